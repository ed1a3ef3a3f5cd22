/* vsockctl ls: a guest directory, or a file, as ls shows them.
 *
 * Names, sizes and modes come from ListFiles. With -l, an agent with the
 * "list" extension gives everything ls -l shows (ListDir, paged, sorted
 * here by name); a base agent the rest (links, owner, group, time, link
 * target) through guestfs.h's fallback. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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
              "               bytes, modification time, name and a symlink's target;\n"
              "               a directory sorted by name. From the agent's \"list\"\n"
              "               extension; an agent without it lists names, sizes and\n"
              "               modes only, and the rest comes from stat(1) run in the\n"
              "               guest (in the agent's order), shown as '?' where the\n"
              "               guest cannot tell\n"
              "  -h, --help   show this help\n"
              "\n"
              "Exit status: 0 on success, 1 if the path could not be listed, 255 for\n"
              "usage, connection and protocol errors.\n",
              f);
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

/* The rows in columns as wide as their widest cell, as ls -l aligns them. */
static void print_rows(const struct ls_row *rows, size_t n) {
        int w[5] = { 1, 1, 1, 1, 1 };
        for (size_t i = 0; i < n; i++) {
                const struct ls_row *row = &rows[i];
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
}

/* ---- ls -l through the "list" extension ----------------------------------------- */

struct stat_list {
        struct vsock_stat *v;
        size_t n, cap;
};

static void stat_list_free(struct stat_list *l) {
        for (size_t i = 0; i < l->n; i++)
                vsock_stat_clear(&l->v[i]);
        free(l->v);
        *l = (struct stat_list) {};
}

/* vsock_list_fn: keep the page's entries (their strings copied). */
static int keep_page(void *userdata, const struct vsock_stat *e, size_t n) {
        struct stat_list *l = userdata;
        for (size_t i = 0; i < n; i++) {
                if (l->n == l->cap) {
                        size_t cap = l->cap ? l->cap * 2 : 256;
                        struct vsock_stat *v = reallocarray(l->v, cap, sizeof *v);
                        if (!v)
                                return -ENOMEM;
                        l->v = v;
                        l->cap = cap;
                }
                struct vsock_stat *d = &l->v[l->n];
                *d = e[i];
                d->name = strdup(e[i].name);
                d->user = e[i].user ? strdup(e[i].user) : NULL;
                d->group = e[i].group ? strdup(e[i].group) : NULL;
                d->target = e[i].target ? strdup(e[i].target) : NULL;
                l->n++;
                if (!d->name || (e[i].user && !d->user) || (e[i].group && !d->group) || (e[i].target && !d->target))
                        return -ENOMEM;
        }
        return 0;
}

static int by_name(const void *a, const void *b) {
        return strcmp(((const struct vsock_stat *) a)->name, ((const struct vsock_stat *) b)->name);
}

static void row_from_stat(const struct vsock_stat *st, const char *name, struct ls_row *row) {
        cli_mode_string(st->mode, false, row->mode);
        snprintf(row->links, sizeof row->links, "%" PRIu64, st->nlink);
        if (st->user)
                snprintf(row->owner, sizeof row->owner, "%s", st->user);
        else
                snprintf(row->owner, sizeof row->owner, "%" PRIu32, st->uid);
        if (st->group)
                snprintf(row->group, sizeof row->group, "%s", st->group);
        else
                snprintf(row->group, sizeof row->group, "%" PRIu32, st->gid);
        if (S_ISCHR(st->mode) || S_ISBLK(st->mode))
                snprintf(row->size, sizeof row->size, "%u, %u", major(st->rdev), minor(st->rdev));
        else
                snprintf(row->size, sizeof row->size, "%" PRId64, st->size);
        int64_t secs = st->mtime_ns / NS_PER_SEC - (st->mtime_ns % NS_PER_SEC < 0);
        time_string(secs, row->when, sizeof row->when);
        row->name = name;
        row->target = st->target;
}

/* A failed extension call: the agent's words, or the library's. */
static int ls_failed(int r, const struct vsock_call *call, const char *addr, const char *p) {
        if (vsock_err_kind(r) == VSOCK_E_REMOTE) {
                /* As the base path says it: the path and the reason. */
                cli_error(":%s: %s", p, strerror(vsock_err_errno(r)));
                return CLI_EXIT_FAILURE;
        }
        agent_report(r, call, "ls", addr);
        return CLI_EXIT_ERROR;
}

/* ls -l with owners, times and targets from the agent itself (ListDir, and
 * an lstat of @p first: a directory is listed, sorted by name; anything
 * else, a symlink to a directory too, is shown as itself, as ls -l does).
 * Returns an exit status, or -1 when the agent lacks the extensions (a
 * base agent: the caller falls back). */
static int ls_long_ext(const char *addr, const char *p) {
        if (vsock_err_kind(vsock_caps_lookup(addr, NULL)) == VSOCK_E_UNSUPPORTED)
                return -1; /* known to be a base agent: no probe */
        vsock_conn *c = NULL;
        if (agent_dial(addr, VSOCK_PORT_EXEC, "ls", &c) < 0)
                return CLI_EXIT_ERROR;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = agent_reply_deadline();
        struct vsock_stat st = {};
        int r = vsock_stat(c, p, false, &call, &st);
        if (r >= 0 && !S_ISDIR(st.mode)) {
                struct ls_row row = {};
                row_from_stat(&st, p, &row);
                print_rows(&row, 1);
                vsock_stat_clear(&st);
                (void) vsock_conn_close(c);
                return CLI_EXIT_OK;
        }
        vsock_stat_clear(&st);
        struct stat_list l = {};
        if (r >= 0) {
                call.deadline_ns = agent_reply_deadline();
                r = vsock_list_dir(c, p, 0, keep_page, &l, &call);
        }
        (void) vsock_conn_close(c);
        if (r < 0) {
                stat_list_free(&l);
                if (vsock_err_kind(r) == VSOCK_E_UNSUPPORTED)
                        return -1;
                return ls_failed(r, &call, addr, p);
        }
        qsort(l.v, l.n, sizeof *l.v, by_name);
        _cleanup_free_ struct ls_row *rows = calloc(l.n ? l.n : 1, sizeof *rows);
        if (!rows) {
                stat_list_free(&l);
                cli_error("ls: out of memory");
                return CLI_EXIT_ERROR;
        }
        for (size_t i = 0; i < l.n; i++)
                row_from_stat(&l.v[i], l.v[i].name, &rows[i]);
        print_rows(rows, l.n);
        stat_list_free(&l);
        return CLI_EXIT_OK;
}

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

        for (size_t i = 0; i < n; i++) {
                struct ls_row *row = &rows[i];
                const struct guest_details *di = d ? &d[i] : NULL;
                cli_mode_string(e[i].mode, e[i].is_dir, row->mode);
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
        }
        print_rows(rows, n);
        guest_details_free(d, n);
        return CLI_EXIT_OK;
}

/* Exit status @r, unless stdout could not take the listing. */
static int ls_flush(int r) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
                if (errno != EPIPE)
                        cli_error("(stdout): %m");
                return CLI_EXIT_FAILURE;
        }
        return r;
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
        if (long_fmt) {
                r = ls_long_ext(addr, p);
                if (r >= 0)
                        return ls_flush(r);
        }

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
        return ls_flush(r);
}
