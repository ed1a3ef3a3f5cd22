#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/io.h"
#include "common/macro.h"

struct cli_options cli_opts;

/* One write(2) per message: port-forward reports from several threads, and
 * whole lines must not interleave. */
__attribute__((format(printf, 1, 0)))
static void emit(const char *fmt, va_list ap, int rc, const struct vsock_call *call, bool with_rc) {
        char line[2048];
        int saved = errno;
        size_t n = (size_t) snprintf(line, sizeof line, "vsockctl: ");
        errno = saved;
        int k = vsnprintf(line + n, sizeof line - n, fmt, ap);
        if (k > 0)
                n = MIN(n + (size_t) k, sizeof line - 1);
        if (with_rc && n < sizeof line - 1) {
                k = snprintf(line + n, sizeof line - n, ": %s", vsock_strerror(rc));
                if (k > 0)
                        n = MIN(n + (size_t) k, sizeof line - 1);
        }
        if (with_rc && call && call->remote_error[0] && n < sizeof line - 1) {
                k = snprintf(line + n, sizeof line - n, ": %s", call->remote_error);
                if (k > 0)
                        n = MIN(n + (size_t) k, sizeof line - 1);
        }
        if (n >= sizeof line - 1)
                n = sizeof line - 2;
        line[n++] = '\n';
        fflush(stdout);
        (void) io_write_all(STDERR_FILENO, line, n, 0, -1);
        errno = saved;
}

void cli_error(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        emit(fmt, ap, 0, NULL, false);
        va_end(ap);
}

void cli_error_rc(int rc, const struct vsock_call *call, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        emit(fmt, ap, rc, call, true);
        va_end(ap);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (cmd)
                cli_error("%s: %s", cmd, msg);
        else
                cli_error("%s", msg);
        return cli_usage_hint(cmd);
}

int cli_usage_hint(const char *cmd) {
        fprintf(stderr, "Try 'vsockctl %s%s--help' for more information.\n", cmd ? cmd : "", cmd ? " " : "");
        return CLI_EXIT_ERROR;
}

int cli_parse_flags(const char *cmd, int argc, char **argv, const struct cli_flag *flags, size_t n,
                    void (*usage)(FILE *f)) {
        struct option options[10] = { { "help", no_argument, NULL, 'h' } };
        char shortopts[2 * ARRAY_SIZE(options) + 1] = "h";
        size_t k = 1;
        n = MIN(n, ARRAY_SIZE(options) - 2);
        for (size_t i = 0; i < n; i++) {
                /* A long-only option's getopt value is past every char. */
                int val = flags[i].letter ? flags[i].letter : 256 + (int) i;
                options[i + 1] = (struct option) { flags[i].name, flags[i].value ? required_argument : no_argument,
                                                   NULL, val };
                if (flags[i].letter) {
                        shortopts[k++] = flags[i].letter;
                        if (flags[i].value)
                                shortopts[k++] = ':';
                }
        }
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, shortopts, options, NULL)) != -1) {
                if (c == 'h') {
                        usage(stdout);
                        return CLI_EXIT_OK;
                }
                size_t i = 0;
                while (i < n && (flags[i].letter ? flags[i].letter : 256 + (int) i) != c)
                        i++;
                if (i == n)
                        return cli_usage_hint(cmd);
                if (flags[i].set)
                        *flags[i].set = true;
                if (flags[i].value)
                        *flags[i].value = optarg;
        }
        return -1;
}

int cli_exit_code_for(int rc) {
        return vsock_err_kind(rc) == VSOCK_E_FILE_REMOTE ? CLI_EXIT_FAILURE : CLI_EXIT_ERROR;
}

int cli_map_exit_code(int64_t code) {
        if (code >= 0 && code <= 255)
                return (int) code;
        int m = (int) (((code % 256) + 256) % 256);
        return m == 0 ? 1 : m;
}

int cli_exec_addr(const char **ret) {
        const char *a = cli_opts.addr;
        if (!a || !*a)
                a = getenv(CLI_ENV_ADDR);
        if (!a || !*a) {
                cli_error("no agent address: use -a ADDR or set %s (e.g. vsock:3, unix:/run/agent.sock)",
                          CLI_ENV_ADDR);
                return -EINVAL;
        }
        struct vsock_addr parsed;
        const char *why = NULL;
        if (vsock_addr_parse(a, VSOCK_PORT_EXEC, &parsed, &why) < 0) {
                cli_error("invalid address '%s': %s", a, why ? why : "unrecognised form");
                return -EINVAL;
        }
        *ret = a;
        return 0;
}

int cli_parse_duration(const char *s, int64_t *ret_ns) {
        if (!s || !*s)
                return -EINVAL;
        char *end = NULL;
        errno = 0;
        double v = strtod(s, &end);
        if (errno != 0 || end == s || !isfinite(v) || v <= 0)
                return -EINVAL;
        /* strtod accepts hex, inf and nan spellings; a duration is digits. */
        for (const char *p = s; p < end; p++)
                if (!((*p >= '0' && *p <= '9') || *p == '.'))
                        return -EINVAL;
        double mult;
        if (*end == '\0' || strcmp(end, "s") == 0)
                mult = 1e9;
        else if (strcmp(end, "ms") == 0)
                mult = 1e6;
        else if (strcmp(end, "m") == 0)
                mult = 60e9;
        else if (strcmp(end, "h") == 0)
                mult = 3600e9;
        else
                return -EINVAL;
        double ns = v * mult;
        /* Cap at about 290 years: far beyond anything useful, and it keeps
         * deadline arithmetic clear of int64 overflow. */
        if (ns < 1 || ns > 9e18)
                return -EINVAL;
        *ret_ns = (int64_t) ns;
        return 0;
}

void cli_format_size(uint64_t n, char *buf, size_t size) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
        if (n < 1024) {
                snprintf(buf, size, "%llu B", (unsigned long long) n);
                return;
        }
        double v = (double) n / 1024;
        size_t u = 0;
        while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
                v /= 1024;
                u++;
        }
        snprintf(buf, size, "%.1f %s", v, units[u]);
}

void cli_mode_string(mode_t m, bool is_dir, char out[11]) {
        char t;
        switch (m & S_IFMT) {
        case S_IFDIR: t = 'd'; break;
        case S_IFLNK: t = 'l'; break;
        case S_IFIFO: t = 'p'; break;
        case S_IFSOCK: t = 's'; break;
        case S_IFCHR: t = 'c'; break;
        case S_IFBLK: t = 'b'; break;
        case S_IFREG: t = '-'; break;
        case 0: t = is_dir ? 'd' : '-'; break;
        default: t = '?'; break;
        }
        out[0] = t;
        static const char rwx[] = "rwx";
        for (int i = 0; i < 9; i++)
                out[1 + i] = (m & (1u << (8 - i))) ? rwx[i % 3] : '-';
        if (m & S_ISUID)
                out[3] = out[3] == 'x' ? 's' : 'S';
        if (m & S_ISGID)
                out[6] = out[6] == 'x' ? 's' : 'S';
        if (m & S_ISVTX)
                out[9] = out[9] == 'x' ? 't' : 'T';
        out[10] = '\0';
}
