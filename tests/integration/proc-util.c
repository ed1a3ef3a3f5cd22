/* Process inspection through /proc for the integration suites: fd and
 * child counts, memory, CPU, state, and bounded waits. */
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

int count_fds(pid_t pid) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/fd", (int) pid);
        DIR *d = opendir(p);
        if (!d)
                return -1;
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

int count_children(pid_t pid) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/task", (int) pid);
        DIR *d = opendir(p);
        if (!d)
                return -1;
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char cp[320];
                snprintf(cp, sizeof cp, "/proc/%d/task/%s/children", (int) pid, de->d_name);
                FILE *f = fopen(cp, "re");
                if (!f)
                        continue;
                int c;
                bool in = false;
                while ((c = fgetc(f)) != EOF) {
                        if (c >= '0' && c <= '9') {
                                if (!in)
                                        n++;
                                in = true;
                        } else
                                in = false;
                }
                fclose(f);
        }
        closedir(d);
        return n;
}

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

static long status_field_kb(pid_t pid, const char *field) {
        char p[64], line[256];
        snprintf(p, sizeof p, "/proc/%d/status", (int) pid);
        FILE *f = fopen(p, "re");
        if (!f)
                return -1;
        long kb = -1;
        size_t fl = strlen(field);
        while (fgets(line, sizeof line, f))
                if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
                        kb = strtol(line + fl + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return kb;
}

long proc_rss_kb(pid_t pid) { return status_field_kb(pid, "VmRSS"); }
long proc_hwm_kb(pid_t pid) { return status_field_kb(pid, "VmHWM"); }

/* The fields of /proc/PID/stat after the command name, which may itself
 * hold spaces and parentheses. */
static bool read_stat(pid_t pid, char *buf, size_t size, const char **ret_rest) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/stat", (int) pid);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, size - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = '\0';
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
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/wchan", (int) pid);
        buf[0] = '\0';
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        ssize_t n = read(fd, buf, size - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
}

/* Whether the NUL-separated environment block @env holds @marker as one
 * whole entry (or, with @prefix, an entry starting with it). */
