/* Process inspection through /proc for the integration suites: fd and
 * child counts, memory, CPU, state, and bounded waits; and "KEY: value"
 * lines of text. */
#include "proc-util.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vsock/conn.h>

int64_t mono_ms(void) { return vsock_now_ns() / 1000000; }

void pause_ms(int ms) { (void) poll(NULL, 0, ms); }

/* /proc/PID/@sub (@pid 0: this process) into @buf, NUL-terminated.
 * Returns its length, -1 if it cannot be read. */
static ssize_t proc_read(pid_t pid, const char *sub, char *buf, size_t size) {
        char p[64];
        if (pid)
                snprintf(p, sizeof p, "/proc/%d/%s", (int) pid, sub);
        else
                snprintf(p, sizeof p, "/proc/self/%s", sub);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        size_t len = 0;
        ssize_t n;
        while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0)
                len += (size_t) n;
        close(fd);
        buf[len] = '\0';
        return (ssize_t) len;
}

/* The sum of @each over the entries of /proc/PID/@sub ("." and ".."
 * skipped), -1 if it cannot be read. */
static int proc_dir_sum(pid_t pid, const char *sub, int (*each)(pid_t, const char *)) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/%s", (int) pid, sub);
        DIR *d = opendir(p);
        if (!d)
                return -1;
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n += each(pid, de->d_name);
        closedir(d);
        return n;
}

static int one(pid_t pid, const char *name) {
        (void) pid;
        (void) name;
        return 1;
}

/* The pids listed in /proc/PID/task/@tid/children. */
static int task_children(pid_t pid, const char *tid) {
        char p[320];
        snprintf(p, sizeof p, "/proc/%d/task/%s/children", (int) pid, tid);
        FILE *f = fopen(p, "re");
        if (!f)
                return 0;
        int n = 0, c;
        bool in = false;
        while ((c = fgetc(f)) != EOF) {
                bool digit = c >= '0' && c <= '9';
                n += digit && !in;
                in = digit;
        }
        fclose(f);
        return n;
}

int count_fds(pid_t pid) { return proc_dir_sum(pid, "fd", one); }

/* Children of every thread: each task lists only its own. */
int count_children(pid_t pid) { return proc_dir_sum(pid, "task", task_children); }

bool pid_exists(pid_t pid) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d", (int) pid);
        return access(p, F_OK) == 0;
}

bool wait_pid_gone(pid_t pid, int bound_ms) {
        int64_t end = mono_ms() + bound_ms;
        while (pid_exists(pid)) {
                if (mono_ms() > end)
                        return false;
                pause_ms(5);
        }
        return true;
}

bool proc_status_field(pid_t pid, const char *key, char *val, size_t size) {
        char buf[16384];
        return proc_read(pid, "status", buf, sizeof buf) >= 0 && text_field(buf, key, val, size);
}

static long status_field_kb(pid_t pid, const char *key) {
        char v[64];
        return proc_status_field(pid, key, v, sizeof v) ? strtol(v, NULL, 10) : -1;
}

long proc_rss_kb(pid_t pid) { return status_field_kb(pid, "VmRSS"); }
long proc_hwm_kb(pid_t pid) { return status_field_kb(pid, "VmHWM"); }

/* The fields of /proc/PID/stat after the command name, which may itself
 * hold spaces and parentheses. */
static bool read_stat(pid_t pid, char *buf, size_t size, const char **ret_rest) {
        if (proc_read(pid, "stat", buf, size) <= 0)
                return false;
        char *q = strrchr(buf, ')');
        if (!q || q[1] != ' ')
                return false;
        *ret_rest = q + 2;
        return true;
}

long proc_cpu_ticks(pid_t pid) {
        char buf[1024];
        const char *rest;
        if (!read_stat(pid, buf, sizeof buf, &rest))
                return -1;
        long ut = 0, st = 0;
        /* Fields 14 and 15 (utime, stime), counted after the comm. */
        if (sscanf(rest, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st) != 2)
                return -1;
        return ut + st;
}

char proc_state(pid_t pid) {
        char buf[1024];
        const char *rest;
        if (!read_stat(pid, buf, sizeof buf, &rest))
                return 0;
        return rest[0];
}

pid_t proc_pgid(pid_t pid) {
        char buf[1024];
        const char *rest;
        int ppid, pgid;
        if (!read_stat(pid, buf, sizeof buf, &rest) || sscanf(rest, "%*c %d %d", &ppid, &pgid) != 2)
                return -1;
        return (pid_t) pgid;
}

void proc_wchan(pid_t pid, char *buf, size_t size) {
        if (proc_read(pid, "wchan", buf, size) < 0)
                buf[0] = '\0';
}

bool text_field(const char *text, const char *key, char *val, size_t size) {
        size_t klen = strlen(key);
        for (const char *l = text; l && *l;) {
                const char *nl = strchr(l, '\n');
                size_t len = nl ? (size_t) (nl - l) : strlen(l);
                if (len > klen && strncmp(l, key, klen) == 0 && (l[klen] == ' ' || l[klen] == ':')) {
                        const char *v = l + klen + 1;
                        const char *end = l + len;
                        while (v < end && (*v == ' ' || *v == '\t'))
                                v++;
                        while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
                                end--;
                        size_t n = (size_t) (end - v);
                        if (n >= size)
                                return false;
                        memcpy(val, v, n);
                        val[n] = '\0';
                        return true;
                }
                l = nl ? nl + 1 : NULL;
        }
        return false;
}

bool text_field_is(const char *text, const char *key, const char *want, char *got, size_t size) {
        if (!text_field(text, key, got, size)) {
                snprintf(got, size, "(no such line)");
                return false;
        }
        return strcmp(got, want) == 0;
}
