/* PID 1 duties for minimal guests. Everything here runs only with --init;
 * the parsers are pure so the unit tests can exercise them without being
 * PID 1. */
#include "agent/init/init.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "common/macro.h"

/* /proc/self/mountinfo and /proc/cmdline are small; a cap keeps a broken
 * procfs from making us allocate without bound. */
#define PROC_FILE_MAX (4u << 20)

bool init_is_pid1(void) {
        return getpid() == 1;
}

void init_strv_free(char **v) {
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

static void strv_freep(char ***v) {
        init_strv_free(*v);
}

/* Read a whole (proc) file: its size is unknown in advance. */
static int read_text_file(const char *path, char **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;

        size_t cap = 4096, len = 0;
        _cleanup_free_ char *data = malloc(cap);
        if (!data)
                return -ENOMEM;
        for (;;) {
                if (cap - len < 2) {
                        if (cap >= PROC_FILE_MAX)
                                return -EFBIG;
                        char *n = realloc(data, cap * 2);
                        if (!n)
                                return -ENOMEM;
                        data = n;
                        cap *= 2;
                }
                ssize_t r = io_read_full(fd, data + len, cap - len - 1, 0, -1);
                if (r < 0)
                        return (int) r;
                len += (size_t) r;
                if (len < cap - 1)
                        break; /* short read: EOF */
        }
        data[len] = '\0';
        *ret = TAKE_PTR(data);
        return 0;
}

/* One word of a kernel command line, split the way the kernel does:
 * whitespace separates words except inside double quotes, which are
 * dropped. Returns the position after the word, or NULL at the end. */
static const char *next_word(const char *p, char **ret_word) {
        while (*p && isspace((unsigned char) *p))
                p++;
        if (!*p)
                return NULL;

        const char *start = p;
        bool quoted = false;
        for (; *p; p++) {
                if (*p == '"')
                        quoted = !quoted;
                else if (!quoted && isspace((unsigned char) *p))
                        break;
        }

        char *w = malloc((size_t) (p - start) + 1), *o = w;
        if (!w)
                return NULL;
        for (const char *q = start; q < p; q++)
                if (*q != '"')
                        *o++ = *q;
        *o = '\0';
        *ret_word = w;
        return p;
}

static bool words_left(const char *p) {
        while (*p && isspace((unsigned char) *p))
                p++;
        return *p != '\0';
}

int init_cmdline_get(const char *cmdline, const char *key, char **ret_value) {
        size_t klen = strlen(key);
        _cleanup_free_ char *found = NULL;
        _cleanup_free_ char *word = NULL;
        const char *p = cmdline;

        for (;;) {
                const char *n = next_word(p, &word);
                if (!n) {
                        if (words_left(p))
                                return -ENOMEM;
                        break;
                }
                p = n;
                if (strcmp(word, "--") == 0)
                        break;
                if (strncmp(word, key, klen) == 0 && word[klen] == '=') {
                        free(found);
                        found = strdup(word + klen + 1);
                        if (!found)
                                return -ENOMEM;
                }
                word = (free(word), NULL);
        }
        if (!found)
                return 0;
        *ret_value = TAKE_PTR(found);
        return 1;
}

struct strv {
        char **v;
        int n;
};

static int strv_push(struct strv *s, const char *a, size_t len) {
        char **n = realloc(s->v, sizeof(char *) * ((size_t) s->n + 2));
        if (!n)
                return -ENOMEM;
        s->v = n;
        s->v[s->n] = strndup(a, len);
        if (!s->v[s->n])
                return -ENOMEM;
        s->v[++s->n] = NULL;
        return 0;
}

static int strv_push2(struct strv *s, const char *opt, const char *val, size_t len) {
        int r = strv_push(s, opt, strlen(opt));
        return r < 0 ? r : strv_push(s, val, len);
}

static int parse_bool_word(const char *v) {
        static const char *const yes[] = { "1", "yes", "true", "on", "" };
        static const char *const no[] = { "0", "no", "false", "off" };
        for (size_t i = 0; i < ARRAY_SIZE(yes); i++)
                if (strcasecmp(v, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ARRAY_SIZE(no); i++)
                if (strcasecmp(v, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

static int map_option(struct strv *out, const char *word) {
        static const struct {
                const char *key, *opt;
        } simple[] = {
                { "vsock.listen", "--listen" },
                { "vsock.ready", "--ready" },
        };
        const char *eq = strchr(word, '=');
        size_t klen = eq ? (size_t) (eq - word) : strlen(word);
        const char *val = eq ? eq + 1 : NULL;

        for (size_t i = 0; i < ARRAY_SIZE(simple); i++) {
                if (strlen(simple[i].key) != klen || strncmp(word, simple[i].key, klen) != 0)
                        continue;
                if (!val || !*val)
                        return -EINVAL;
                return strv_push2(out, simple[i].opt, val, strlen(val));
        }

        if (klen == strlen("vsock.allow_cid") && strncmp(word, "vsock.allow_cid", klen) == 0) {
                if (!val || !*val)
                        return -EINVAL;
                /* Comma-separated lists and repeated words both add CIDs;
                 * the agent's own option parser validates each number. */
                for (const char *p = val; *p;) {
                        size_t n = strcspn(p, ",");
                        if (n > 0) {
                                int r = strv_push2(out, "--allow-cid", p, n);
                                if (r < 0)
                                        return r;
                        }
                        p += n;
                        if (*p == ',')
                                p++;
                }
                return 0;
        }

        static const struct {
                const char *key, *opt;
        } flags[] = {
                { "vsock.privileged", "--privileged" },
                { "vsock.pid_ns", "--pid-ns" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(flags); i++) {
                if (strlen(flags[i].key) != klen || strncmp(word, flags[i].key, klen) != 0)
                        continue;
                int b = parse_bool_word(val ? val : "");
                if (b < 0)
                        return b;
                return b ? strv_push(out, flags[i].opt, strlen(flags[i].opt)) : 0;
        }
        return 0; /* not ours (other vsock.* words may be module parameters) */
}

int init_cmdline_options(const char *cmdline, char ***ret_argv, int *ret_argc) {
        _cleanup_(strv_freep) char **v = calloc(1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        struct strv out = { .v = v, .n = 0 };
        _cleanup_free_ char *word = NULL;
        const char *p = cmdline ? cmdline : "";
        int r = 0;

        for (;;) {
                const char *n = next_word(p, &word);
                if (!n) {
                        if (words_left(p))
                                r = -ENOMEM;
                        break;
                }
                p = n;
                if (strcmp(word, "--") == 0)
                        break;
                r = map_option(&out, word);
                /* strv_push may have moved the array even when it failed. */
                v = out.v;
                if (r < 0)
                        break;
                word = (free(word), NULL);
        }
        if (r < 0)
                return r;
        *ret_argv = TAKE_PTR(v);
        *ret_argc = out.n;
        return 0;
}

/* Whether the mountinfo field [f, end) equals @path once its octal escapes
 * (\040 for a space, \011, \012, \134) are decoded. */
static bool field_equals(const char *f, const char *end, const char *path) {
        while (f < end) {
                char c = *f;
                if (c == '\\' && end - f >= 4 && f[1] >= '0' && f[1] <= '3' && f[2] >= '0' &&
                    f[2] <= '7' && f[3] >= '0' && f[3] <= '7') {
                        c = (char) (((f[1] - '0') << 6) | ((f[2] - '0') << 3) | (f[3] - '0'));
                        f += 4;
                } else
                        f++;
                if (*path++ != c)
                        return false;
        }
        return *path == '\0';
}

bool init_mountinfo_has(const char *mountinfo, const char *path) {
        for (const char *line = mountinfo; line && *line;) {
                const char *end = strchrnul(line, '\n');
                /* Fields: id parent major:minor root mount-point ... */
                const char *f = line;
                for (int i = 0; i < 4 && f < end; i++) {
                        f = memchr(f, ' ', (size_t) (end - f));
                        f = f ? f + 1 : end;
                }
                if (f < end) {
                        const char *fe = memchr(f, ' ', (size_t) (end - f));
                        if (field_equals(f, fe ? fe : end, path))
                                return true;
                }
                line = *end ? end + 1 : end;
        }
        return false;
}

struct mount_spec {
        const char *what, *where, *type;
        unsigned long flags;
        const char *data;
};

static const struct mount_spec basic_mounts[] = {
        { "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL },
        { "devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_STRICTATIME, "mode=0755" },
        /* gid 5 is the conventional tty group; ptmxmode lets every user
         * open /dev/pts/ptmx. */
        { "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,gid=5,ptmxmode=0666" },
        { "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_STRICTATIME, "mode=1777" },
        { "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_STRICTATIME, "mode=1777" },
        { "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_STRICTATIME, "mode=0755" },
};

static int mount_one(const struct mount_spec *m) {
        if (mkdir(m->where, 0755) < 0 && errno != EEXIST) {
                int r = -errno;
                log_warn("init: mkdir %s: %s", m->where, strerror(-r));
                return r;
        }
        if (mount(m->what, m->where, m->type, m->flags, m->data) < 0) {
                int r = -errno;
                log_warn("init: mount %s on %s: %s", m->type, m->where, strerror(-r));
                return r;
        }
        return 0;
}

int init_mount_basics(void) {
        static const struct mount_spec proc = {
                "proc", "/proc", "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL
        };
        int ret = 0, r;

        /* Everything else is checked against /proc/self/mountinfo, so procfs
         * comes first; its absence is told by the file itself. */
        if (access("/proc/self/mountinfo", F_OK) < 0) {
                r = mount_one(&proc);
                if (r < 0)
                        return r;
        }

        _cleanup_free_ char *mi = NULL;
        r = read_text_file("/proc/self/mountinfo", &mi);
        if (r < 0) {
                log_warn("init: reading /proc/self/mountinfo: %s", strerror(-r));
                return r;
        }

        /* In order: /dev/pts and /dev/shm live on /dev. A fresh devtmpfs has
         * nothing under it, so the one mountinfo snapshot stays accurate. */
        for (size_t i = 0; i < ARRAY_SIZE(basic_mounts); i++) {
                if (init_mountinfo_has(mi, basic_mounts[i].where))
                        continue;
                r = mount_one(&basic_mounts[i]);
                if (r < 0 && ret == 0)
                        ret = r;
        }

        static const char *const links[][2] = {
                { "/proc/self/fd", "/dev/fd" },
                { "/proc/self/fd/0", "/dev/stdin" },
                { "/proc/self/fd/1", "/dev/stdout" },
                { "/proc/self/fd/2", "/dev/stderr" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(links); i++)
                if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
                        log_debug("init: symlink %s: %s", links[i][1], strerror(errno));
        return ret;
}

void init_set_hostname_from_cmdline(void) {
        _cleanup_free_ char *cmdline = NULL, *name = NULL;
        int r = read_text_file("/proc/cmdline", &cmdline);
        if (r < 0) {
                log_warn("init: reading /proc/cmdline: %s", strerror(-r));
                return;
        }
        r = init_cmdline_get(cmdline, "hostname", &name);
        if (r <= 0)
                return;
        if (sethostname(name, strlen(name)) < 0)
                log_warn("init: sethostname(%s): %s", name, strerror(errno));
}

void init_reap_orphans(bool (*is_own)(pid_t pid, void *userdata), void *userdata) {
        for (;;) {
                siginfo_t si = { 0 };
                /* WNOWAIT: look before reaping, so a child the agent tracks
                 * through its pidfd is never reaped behind its back. */
                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
                        return; /* ECHILD: no children at all */
                if (si.si_pid == 0)
                        return; /* children, none exited */
                if (is_own && is_own(si.si_pid, userdata))
                        return;
                siginfo_t reaped = { 0 };
                if (waitid(P_PID, (id_t) si.si_pid, &reaped, WEXITED | WNOHANG) < 0)
                        return;
                log_debug("init: reaped orphan %d", (int) si.si_pid);
        }
}

void init_signal_mask_add(sigset_t *mask) {
        static const int base[] = { SIGCHLD, SIGTERM, SIGINT, SIGUSR1, SIGUSR2 };
        for (size_t i = 0; i < ARRAY_SIZE(base); i++)
                sigaddset(mask, base[i]);
        /* SIGRTMIN is a libc function, not a constant. */
        for (int off = 3; off <= 5; off++)
                sigaddset(mask, SIGRTMIN + off);
}

enum init_action init_signal_action(int signo) {
        if (signo == SIGTERM || signo == SIGUSR1 || signo == SIGUSR2)
                return INIT_ACTION_POWEROFF;
        if (signo == SIGINT)
                return INIT_ACTION_REBOOT;
        if (signo == SIGRTMIN + 3 || signo == SIGRTMIN + 4)
                return INIT_ACTION_POWEROFF;
        if (signo == SIGRTMIN + 5)
                return INIT_ACTION_REBOOT;
        return INIT_ACTION_NONE;
}

void init_disable_cad(void) {
        if (reboot(RB_DISABLE_CAD) < 0)
                log_debug("init: RB_DISABLE_CAD: %s", strerror(errno));
}

/* Reap children until none is left or @timeout_ms passes. Polls: at
 * shutdown nothing else needs the agent, and a bound matters more than
 * latency. */
static void reap_all(int timeout_ms) {
        int64_t deadline = deadline_from_ms(timeout_ms);
        for (;;) {
                siginfo_t si = { 0 };
                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) < 0 && errno == ECHILD)
                        return;
                if (si.si_pid != 0)
                        continue;
                if (deadline_to_poll_ms(deadline) == 0)
                        return;
                (void) nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
        }
}

_Noreturn void init_shutdown(bool reboot_after) {
        log_info("init: %s", reboot_after ? "rebooting" : "powering off");
        sync();
        /* Give every remaining process (orphans, daemons started from
         * sessions) a chance to flush its files before the hard stop. */
        (void) kill(-1, SIGTERM);
        reap_all(2000);
        (void) kill(-1, SIGKILL);
        reap_all(500);
        sync();
        if (reboot(reboot_after ? RB_AUTOBOOT : RB_POWER_OFF) < 0)
                log_error("init: reboot: %s", strerror(errno));
        for (;;)
                pause();
}
