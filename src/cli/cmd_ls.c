/* vsockctl ls: a guest directory, or a file, as ls shows them.
 *
 * Names, sizes and modes come from ListFiles; with -l the rest of what
 * ls -l shows (links, owner, group, time, link target) from guestfs.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"
#include "common/macro.h"
#include "guestfs.h"

static void ls_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] ls [-l] :/PATH\n"
              "\n"
              "List a guest directory in the agent's order, or show a file (the leading\n"
              "':' may be left out).\n"
              "\n"
              "  -l, --long   as ls -l: mode (drwxr-xr-x, lrwxrwxrwx, with s/S and t/T for\n"
              "               setuid, setgid and sticky), links, owner, group, size in\n"
              "               bytes, modification time, name and a symlink's target.\n"
              "               The protocol lists names, sizes and modes only: the rest\n"
              "               comes from stat(1) run in the guest, shown as '?' where\n"
              "               the guest cannot tell\n"
              "  -h, --help   show this help\n"
              "\n"
              "Exit status: 0 on success, 1 if the path could not be listed, 255 for\n"
              "usage, connection and protocol errors.\n",
              f);
}

/* ls -l's ten-character mode string. */
static void mode_string(mode_t m, bool is_dir, char out[11]) {
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

/* ls's time column: month, day and time within the last six months,
 * else month, day and year. */
static void time_string(int64_t t, char *buf, size_t size) {
        time_t tt = (time_t) t, now = time(NULL);
        struct tm tm;
        if (!localtime_r(&tt, &tm)) {
                snprintf(buf, size, "?");
                return;
        }
        bool recent = t <= (int64_t) now + 3600 && t > (int64_t) now - 182 * 24 * 3600;
        if (strftime(buf, size, recent ? "%b %e %H:%M" : "%b %e  %Y", &tm) == 0)
                snprintf(buf, size, "?");
}

struct ls_row {
        char mode[11], links[24], owner[64], group[64], size[24], when[32];
        const char *name;
        const char *target;
};

static int ls_long(const char *addr, const char *dir, const struct vsock_file_entry *e, char *const *shown,
                   size_t n) {
        _cleanup_free_ char **names = calloc(n ? n : 1, sizeof *names);
        _cleanup_free_ struct ls_row *rows = calloc(n ? n : 1, sizeof *rows);
        if (!names || !rows) {
                cli_error("ls: out of memory");
                return CLI_EXIT_ERROR;
        }
        for (size_t i = 0; i < n; i++)
                names[i] = e[i].name;
        struct guest_details *d = NULL;
        char why[256] = "";
        if (n > 0 && guestfs_details(addr, dir, names, n, &d, why, sizeof why) < 0)
                cli_error("ls: links, owners and times unknown: %s", why);

        int w[5] = { 1, 1, 1, 1, 1 };
        for (size_t i = 0; i < n; i++) {
                struct ls_row *row = &rows[i];
                const struct guest_details *di = d ? &d[i] : NULL;
                mode_string(e[i].mode, e[i].is_dir, row->mode);
                snprintf(row->size, sizeof row->size, "%" PRId64, e[i].size);
                if (di && di->known) {
                        snprintf(row->links, sizeof row->links, "%" PRIu64, di->nlink);
                        snprintf(row->owner, sizeof row->owner, "%s", di->owner);
                        snprintf(row->group, sizeof row->group, "%s", di->group);
                        time_string(di->mtime, row->when, sizeof row->when);
                } else {
                        strcpy(row->links, "?");
                        strcpy(row->owner, "?");
                        strcpy(row->group, "?");
                        strcpy(row->when, "?");
                }
                row->name = shown[i];
                row->target = di ? di->link_target : NULL;
                const char *cols[5] = { row->links, row->owner, row->group, row->size, row->when };
                for (int k = 0; k < 5; k++)
                        w[k] = MAX(w[k], (int) strlen(cols[k]));
        }
        for (size_t i = 0; i < n; i++) {
                const struct ls_row *row = &rows[i];
                printf("%s %*s %-*s %-*s %*s %-*s %s", row->mode, w[0], row->links, w[1], row->owner, w[2],
                       row->group, w[3], row->size, w[4], row->when, row->name);
                if (row->target)
                        printf(" -> %s", row->target);
                putchar('\n');
        }
        guest_details_free(d, n);
        return CLI_EXIT_OK;
}

int cmd_ls(int argc, char **argv) {
        bool long_fmt = false;
        const struct cli_flag flags[] = { { 'l', "long", &long_fmt } };
        int r = cli_parse_flags("ls", argc, argv, flags, ARRAY_SIZE(flags), ls_usage);
        if (r >= 0)
                return r;
        if (argc - optind != 1)
                return cli_usage_error("ls", argc - optind < 1 ? "missing PATH" : "too many arguments");
        const char *p = argv[optind][0] == ':' ? argv[optind] + 1 : argv[optind];
        if (!*p)
                return cli_usage_error("ls", "empty guest path");
        const char *addr;
        if (cli_exec_addr(&addr) < 0)
                return CLI_EXIT_ERROR;

        struct vsock_call call = VSOCK_CALL_INIT;
        struct vsock_file_entry *e = NULL;
        size_t n = 0;
        _cleanup_free_ char *dir = NULL;
        char *one_name[1] = { (char *) p };
        char **shown = NULL;
        r = guestfs_list(addr, p, &call, &e, &n);
        if (r < 0 && vsock_err_kind(r) == VSOCK_E_FILE_REMOTE && vsock_err_errno(r) == ENOTDIR) {
                /* A file: shown as itself, under the name given, as ls does. */
                struct vsock_file_entry one = {};
                if (guestfs_stat(addr, p, &one) >= 0) {
                        e = malloc(sizeof *e);
                        if (!e) {
                                free(one.name);
                                cli_error("ls: out of memory");
                                return CLI_EXIT_ERROR;
                        }
                        e[0] = one;
                        n = 1;
                        r = 0;
                        shown = one_name;
                        dir = guestfs_dir_name(p);
                }
        }
        if (r < 0) {
                if (vsock_err_kind(r) == VSOCK_E_FILE_REMOTE && call.remote_error[0])
                        cli_error(":%s: %s", p, call.remote_error);
                else if (!agent_dial_failed(r))
                        agent_report(r, &call, "ls", addr);
                return cli_exit_code_for(r);
        }
        _cleanup_free_ char **names = NULL;
        if (!shown) {
                names = calloc(n ? n : 1, sizeof *names);
                if (!names) {
                        vsock_file_entries_free(e, n);
                        cli_error("ls: out of memory");
                        return CLI_EXIT_ERROR;
                }
                for (size_t i = 0; i < n; i++)
                        names[i] = e[i].name;
                shown = names;
        }
        if (long_fmt)
                r = ls_long(addr, dir ? dir : p, e, shown, n);
        else {
                for (size_t i = 0; i < n; i++)
                        printf("%s\n", shown[i]);
                r = CLI_EXIT_OK;
        }
        vsock_file_entries_free(e, n);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                if (errno != EPIPE)
                        cli_error("(stdout): %m");
                return CLI_EXIT_FAILURE;
        }
        return r;
}
