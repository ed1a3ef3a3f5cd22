/* Process inspection through /proc, shared by the integration suites. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- time --------------------------------------------------------------- */

int64_t mono_ms(void);
/* Bounded wait for something that has no event to wait on (polling). */
void pause_ms(int ms);

/* ---- /proc ---------------------------------------------------------------- */

int count_fds(pid_t pid);
/* Children of every thread of @pid (/proc/PID/task/TID/children). */
int count_children(pid_t pid);
bool pid_exists(pid_t pid);
/* Wait (bounded) until @pid is gone entirely: not even a zombie. */
bool wait_pid_gone(pid_t pid, int bound_ms);
/* The value of field @key of /proc/PID/status (@pid 0: this process)
 * into @val, as text_field() finds it. */
bool proc_status_field(pid_t pid, const char *key, char *val, size_t size);
long proc_rss_kb(pid_t pid);   /* VmRSS, -1 if unknown */
long proc_hwm_kb(pid_t pid);   /* VmHWM */
long proc_cpu_ticks(pid_t pid); /* utime + stime in clock ticks */
/* The one-letter state from /proc/PID/stat ('R', 'S', 'Z', ...), 0 if gone. */
char proc_state(pid_t pid);
/* /proc/PID/wchan into @buf ("" when the kernel hides it). */
void proc_wchan(pid_t pid, char *buf, size_t size);
pid_t proc_pgid(pid_t pid);

/* ---- text ------------------------------------------------------------------ */

/* The value on the first line of @text that starts with @key followed by
 * ':' or ' ' ("KEY: value" as in /proc status files, "KEY value" as a
 * probe prints), without surrounding blanks or a TTY's trailing \r, into
 * @val. False when there is no such line or the value does not fit. */
bool text_field(const char *text, const char *key, char *val, size_t size);
/* Whether @text has the line "@key @want"; what it has instead goes to
 * @got ("(no such line)" when none). */
bool text_field_is(const char *text, const char *key, const char *want, char *got, size_t size);
