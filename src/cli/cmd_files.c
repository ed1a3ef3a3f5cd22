/* vsockctl cp, cat and ls: the file operations of the exec service.
 *
 * Each transfer is one request carrying the whole file, so there are no
 * partial-progress numbers to show: on a terminal, cp shows a spinner with
 * the size and elapsed time while the request runs, then one summary line. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/buf.h"
#include "common/io.h"
#include "common/macro.h"

/* Guest paths are written ":/path"; ls and cat accept a bare path too. */
static const char *guest_path(const char *arg) { return arg[0] == ':' ? arg + 1 : NULL; }

static const char *base_name(const char *p) {
        size_t n = strlen(p);
        while (n > 1 && p[n - 1] == '/')
                n--;
        const char *s = p + n;
        while (s > p && s[-1] != '/')
                s--;
        return s;
}

/* The largest file whose WriteFile request still fits one frame of the
 * agent's default payload limit: content travels base64-encoded (4 bytes
 * per 3) next to the JSON-escaped path (at most 6 bytes per byte). */
static size_t write_limit(const char *guest) {
        size_t overhead = 64 + 6 * strlen(guest);
        if (overhead >= VSOCK_MAX_PAYLOAD_DEFAULT)
                return 0;
        return (VSOCK_MAX_PAYLOAD_DEFAULT - overhead) / 4 * 3;
}

static void free_datap(uint8_t **p) { free(*p); }

/* ---- progress -------------------------------------------------------------- */

struct progress {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool active, done;
        const char *label;
        char size[32];
        int64_t start_ns;
};

static void progress_draw(struct progress *p, char spin) {
        double secs = (double) (vsock_now_ns() - p->start_ns) / 1e9;
        const char *sep = p->size[0] ? "  " : "";
        if (spin)
                fprintf(stderr, "\r\033[K%c %s%s%s  %.1fs", spin, p->label, sep, p->size, secs);
        else
                fprintf(stderr, "\r\033[K%s%s%s  %.1fs\n", p->label, sep, p->size, secs);
        fflush(stderr);
}

static void *progress_thread(void *arg) {
        static const char spinner[] = "|/-\\";
        struct progress *p = arg;
        unsigned i = 0;

        pthread_mutex_lock(&p->lock);
        while (!p->done) {
                progress_draw(p, spinner[i++ % 4]);
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_nsec += 100 * 1000 * 1000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                (void) pthread_cond_timedwait(&p->cond, &p->lock, &ts);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* Start a spinner on stderr if it is a terminal. @size: bytes, or -1 when
 * not known yet. */
static void progress_start(struct progress *p, const char *label, int64_t size) {
        *p = (struct progress) { .label = label, .start_ns = vsock_now_ns() };
        if (!isatty(STDERR_FILENO))
                return;
        if (size >= 0)
                cli_format_size((uint64_t) size, p->size, sizeof p->size);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&p->cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&p->lock, NULL);
        if (pthread_create(&p->thread, NULL, progress_thread, p) != 0) {
                pthread_cond_destroy(&p->cond);
                pthread_mutex_destroy(&p->lock);
                return;
        }
        p->active = true;
}

/* Stop the spinner; on success leave a summary line (with the final size,
 * or -1 to keep the one given at start), on failure just clear it. */
static void progress_stop(struct progress *p, bool ok, int64_t size) {
        if (!p->active)
                return;
        pthread_mutex_lock(&p->lock);
        p->done = true;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
        if (size >= 0)
                cli_format_size((uint64_t) size, p->size, sizeof p->size);
        if (ok)
                progress_draw(p, 0);
        else {
                fputs("\r\033[K", stderr);
                fflush(stderr);
        }
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        p->active = false;
}

/* ---- guest side ------------------------------------------------------------- */

/* After a failed read: if the file is simply larger than the protocol's read
 * limit, say so plainly (the agent's wording varies between agents).
 * Returns true if that was the reason and it has been reported. */
static bool explain_too_large(const char *addr, const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        if (!dir)
                return false;
        char *slash = strrchr(dir, '/');
        const char *name;
        if (!slash)
                return false;
        name = slash + 1;
        if (slash == dir) {
                dir[1] = '\0';
                name = path + 1;
        } else
                *slash = '\0';
        if (!*name)
                return false;

        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_now_ns() + 10 * (int64_t) 1000000000;
        struct vsock_file_entry *e = NULL;
        size_t n = 0;
        if (vsock_list_files_at(addr, dir, &call, &e, &n) < 0)
                return false;
        bool big = false;
        for (size_t i = 0; i < n; i++)
                if (strcmp(e[i].name, name) == 0 && !e[i].is_dir && e[i].size > (int64_t) VSOCK_READ_FILE_MAX)
                        big = true;
        vsock_file_entries_free(e, n);
        if (big)
                cli_error(":%s: file exceeds the protocol's %u MiB read limit", path,
                          VSOCK_READ_FILE_MAX / (1024 * 1024));
        return big;
}

/* The guest's own words for a failed file operation; the address and the
 * library's reason for anything else (connection, protocol). */
static void report(int rc, const struct vsock_call *call, const char *addr, const char *path) {
        if (vsock_err_kind(rc) == VSOCK_E_FILE_REMOTE && call->remote_error[0])
                cli_error(":%s: %s", path, call->remote_error);
        else
                cli_error_rc(rc, call, ":%s: %s", path, addr);
}

/* Read a guest file; reports errors itself and returns an exit status. */
static int guest_read(const char *addr, const char *path, struct progress *prog, uint8_t **ret_data,
                      size_t *ret_len) {
        struct vsock_call call = VSOCK_CALL_INIT;
        int r = vsock_read_file_at(addr, path, &call, ret_data, ret_len);
        if (prog)
                progress_stop(prog, r >= 0, r >= 0 ? (int64_t) *ret_len : -1);
        if (r >= 0)
                return CLI_EXIT_OK;
        if (vsock_err_kind(r) == VSOCK_E_FILE_REMOTE && explain_too_large(addr, path))
                return CLI_EXIT_FAILURE;
        if (vsock_err_kind(r) == VSOCK_E_FRAME_TOO_LARGE) {
                cli_error(":%s: file exceeds the protocol's %u MiB read limit", path,
                          VSOCK_READ_FILE_MAX / (1024 * 1024));
                return CLI_EXIT_FAILURE;
        }
        report(r, &call, addr, path);
        return cli_exit_code_for(r);
}

static int guest_write(const char *addr, const char *path, struct progress *prog, const void *data, size_t len,
                       mode_t mode) {
        struct vsock_call call = VSOCK_CALL_INIT;
        int r = vsock_write_file_at(addr, path, data, len, mode, &call);
        if (prog)
                progress_stop(prog, r >= 0, -1);
        if (r >= 0)
                return CLI_EXIT_OK;
        report(r, &call, addr, path);
        return cli_exit_code_for(r);
}

/* ---- local side -------------------------------------------------------------- */

/* Read a local file (or stdin for "-") whole, refusing more than @limit
 * bytes. Returns an exit status; errors are reported. */
static int local_read(const char *name, size_t limit, uint8_t **ret_data, size_t *ret_len, mode_t *ret_mode) {
        _cleanup_close_ int own = -1;
        int fd = STDIN_FILENO;
        const char *shown = strcmp(name, "-") == 0 ? "(stdin)" : name;
        struct stat st;

        if (strcmp(name, "-") != 0) {
                own = open(name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (own < 0) {
                        cli_error("%s: %m", name);
                        return CLI_EXIT_FAILURE;
                }
                fd = own;
        }
        if (fstat(fd, &st) < 0) {
                cli_error("%s: %m", shown);
                return CLI_EXIT_FAILURE;
        }
        if (S_ISDIR(st.st_mode)) {
                cli_error("%s: is a directory (copy files one at a time)", shown);
                return CLI_EXIT_FAILURE;
        }
        char lim[32];
        cli_format_size(limit, lim, sizeof lim);
        if (S_ISREG(st.st_mode) && (uint64_t) st.st_size > limit) {
                char sz[32];
                cli_format_size((uint64_t) st.st_size, sz, sizeof sz);
                cli_error("%s: file too large to send (%s; one write request holds at most %s)", shown, sz, lim);
                return CLI_EXIT_FAILURE;
        }

        /* Stream in chunks even for regular files: the size may change
         * under us, and pipes have none. One byte over the limit is enough
         * to know it is too big. */
        struct buf b = BUF_INIT(limit + 1);
        for (;;) {
                uint8_t *tail;
                int r = buf_reserve(&b, 64 * 1024, &tail);
                if (r == -ENOBUFS)
                        r = buf_reserve(&b, limit + 1 - buf_size(&b), &tail);
                if (r < 0 || buf_size(&b) > limit) {
                        if (r < 0 && r != -ENOBUFS)
                                cli_error("%s: %s", shown, strerror(-r));
                        else
                                cli_error("%s: file too large to send (one write request holds at most %s)", shown,
                                          lim);
                        buf_free(&b);
                        return CLI_EXIT_FAILURE;
                }
                size_t room = MIN((size_t) 64 * 1024, limit + 1 - buf_size(&b));
                ssize_t n = io_read_once(fd, tail, room);
                if (n < 0) {
                        cli_error("%s: %s", shown, strerror((int) -n));
                        buf_free(&b);
                        return CLI_EXIT_FAILURE;
                }
                if (n == 0)
                        break;
                (void) buf_commit(&b, (size_t) n);
        }
        if (buf_size(&b) > limit) {
                cli_error("%s: file too large to send (one write request holds at most %s)", shown, lim);
                buf_free(&b);
                return CLI_EXIT_FAILURE;
        }
        *ret_mode = strcmp(name, "-") == 0 ? 0 : (st.st_mode & 07777);
        if (buf_steal(&b, ret_data, ret_len) < 0) {
                buf_free(&b);
                cli_error("out of memory");
                return CLI_EXIT_FAILURE;
        }
        return CLI_EXIT_OK;
}

static int local_write(const char *name, const uint8_t *data, size_t len) {
        _cleanup_close_ int own = -1;
        int fd = STDOUT_FILENO;
        if (strcmp(name, "-") != 0) {
                own = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
                if (own < 0) {
                        cli_error("%s: %m", name);
                        return CLI_EXIT_FAILURE;
                }
                fd = own;
        }
        int r = io_write_all(fd, data, len, 0, -1);
        if (r >= 0 && own >= 0 && close(TAKE_FD(own)) < 0)
                r = -errno;
        if (r < 0) {
                cli_error("%s: %s", strcmp(name, "-") == 0 ? "(stdout)" : name, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        return CLI_EXIT_OK;
}

/* ---- cp ------------------------------------------------------------------------- */

static void cp_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] cp SRC DST\n"
              "\n"
              "Copy one file between this machine and the guest. A guest path is written\n"
              ":/path; the other side is a local path, or '-' for stdin/stdout. Both sides\n"
              "may be guest paths (the data passes through this machine).\n"
              "\n"
              "  vsockctl cp ./app.conf :/etc/app.conf      upload (keeps the permissions)\n"
              "  vsockctl cp :/var/log/app.log .            download into a directory\n"
              "  vsockctl cp ./tool :/usr/local/bin/        a guest DST ending in '/' gets\n"
              "                                             SRC's file name\n"
              "\n"
              "The protocol moves a file in one message: downloads are limited to 16 MiB\n"
              "by the agent, uploads to what fits one frame (about 48 MiB). On a terminal\n"
              "a spinner with the size and elapsed time is shown on stderr.\n"
              "\n"
              "Exit status: 0 on success, 1 if a file operation failed, 255 for usage,\n"
              "connection and protocol errors.\n",
              f);
}

static int simple_opts(const char *cmd, int argc, char **argv, const char *shortopts, void (*usage)(FILE *),
                       bool *ret_long) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "long", no_argument, NULL, 'l' },
                {}
        };
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, shortopts, options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        usage(stdout);
                        return 0;
                case 'l':
                        if (ret_long) {
                                *ret_long = true;
                                break;
                        }
                        __attribute__((fallthrough));
                default:
                        return cli_usage_hint(cmd);
                }
        }
        return -1;
}

int cmd_cp(int argc, char **argv) {
        int r = simple_opts("cp", argc, argv, "+h", cp_usage, NULL);
        if (r >= 0)
                return r;
        if (argc - optind != 2)
                return cli_usage_error("cp", argc - optind < 2 ? "missing SRC or DST" : "too many arguments");
        const char *src = argv[optind], *dst = argv[optind + 1];
        const char *gsrc = guest_path(src), *gdst = guest_path(dst);
        if (!gsrc && !gdst)
                return cli_usage_error("cp", "one of SRC and DST must be a guest path (:/path)");
        if ((gsrc && !*gsrc) || (gdst && !*gdst))
                return cli_usage_error("cp", "empty guest path");

        const char *addr;
        if (cli_exec_addr(&addr) < 0)
                return CLI_EXIT_ERROR;

        _cleanup_(free_datap) uint8_t *data = NULL;
        _cleanup_free_ char *target = NULL, *label = NULL;
        size_t len = 0;
        struct progress prog;

        if (gsrc) {
                if (asprintf(&label, "%s -> %s", src, dst) < 0)
                        return CLI_EXIT_ERROR;
                progress_start(&prog, label, -1);
                r = guest_read(addr, gsrc, &prog, &data, &len);
                if (r != CLI_EXIT_OK)
                        return r;
                if (gdst) {
                        if (gdst[strlen(gdst) - 1] == '/' && asprintf(&target, "%s%s", gdst, base_name(gsrc)) < 0)
                                return CLI_EXIT_ERROR;
                        return guest_write(addr, target ? target : gdst, NULL, data, len, 0);
                }
                struct stat st;
                if (strcmp(dst, "-") != 0 && stat(dst, &st) >= 0 && S_ISDIR(st.st_mode) &&
                    asprintf(&target, "%s/%s", dst, base_name(gsrc)) < 0)
                        return CLI_EXIT_ERROR;
                return local_write(target ? target : dst, data, len);
        }

        if (gdst[strlen(gdst) - 1] == '/') {
                if (strcmp(src, "-") == 0)
                        return cli_usage_error("cp", "a guest directory needs a file name when reading stdin");
                if (asprintf(&target, "%s%s", gdst, base_name(src)) < 0)
                        return CLI_EXIT_ERROR;
                gdst = target;
        }
        mode_t mode = 0;
        r = local_read(src, write_limit(gdst), &data, &len, &mode);
        if (r != CLI_EXIT_OK)
                return r;
        if (asprintf(&label, "%s -> :%s", src, gdst) < 0)
                return CLI_EXIT_ERROR;
        progress_start(&prog, label, (int64_t) len);
        return guest_write(addr, gdst, &prog, data, len, mode);
}

/* ---- cat ------------------------------------------------------------------------- */

static void cat_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] cat :/PATH...\n"
              "\n"
              "Write guest files to stdout (the leading ':' may be left out). Each file\n"
              "is read in one request, so at most 16 MiB per file.\n"
              "\n"
              "Exit status: 0 on success, 1 if a file could not be read, 255 for usage,\n"
              "connection and protocol errors.\n",
              f);
}

int cmd_cat(int argc, char **argv) {
        int r = simple_opts("cat", argc, argv, "h", cat_usage, NULL);
        if (r >= 0)
                return r;
        if (optind >= argc)
                return cli_usage_error("cat", "missing PATH");
        const char *addr;
        if (cli_exec_addr(&addr) < 0)
                return CLI_EXIT_ERROR;

        int status = CLI_EXIT_OK;
        for (int i = optind; i < argc; i++) {
                const char *p = guest_path(argv[i]) ?: argv[i];
                _cleanup_(free_datap) uint8_t *data = NULL;
                size_t len = 0;
                r = guest_read(addr, p, NULL, &data, &len);
                if (r == CLI_EXIT_ERROR)
                        return r;
                if (r != CLI_EXIT_OK) {
                        status = r;
                        continue;
                }
                r = io_write_all(STDOUT_FILENO, data, len, 0, -1);
                if (r < 0) {
                        if (r != -EPIPE)
                                cli_error("(stdout): %s", strerror(-r));
                        return CLI_EXIT_FAILURE;
                }
        }
        return status;
}

/* ---- ls -------------------------------------------------------------------------- */

static void ls_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] ls [-l] :/DIR\n"
              "\n"
              "List a guest directory in the agent's order (the leading ':' may be left\n"
              "out).\n"
              "\n"
              "  -l, --long   mode (as ls -l: drwxr-xr-x, lrwxrwxrwx, with s/S and t/T\n"
              "               for setuid, setgid and sticky), size in bytes, name\n"
              "  -h, --help   show this help\n"
              "\n"
              "Exit status: 0 on success, 1 if the directory could not be listed, 255\n"
              "for usage, connection and protocol errors.\n",
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

int cmd_ls(int argc, char **argv) {
        bool long_fmt = false;
        int r = simple_opts("ls", argc, argv, "hl", ls_usage, &long_fmt);
        if (r >= 0)
                return r;
        if (argc - optind != 1)
                return cli_usage_error("ls", argc - optind < 1 ? "missing DIR" : "too many arguments");
        const char *p = guest_path(argv[optind]) ?: argv[optind];
        if (!*p)
                return cli_usage_error("ls", "empty guest path");
        const char *addr;
        if (cli_exec_addr(&addr) < 0)
                return CLI_EXIT_ERROR;

        struct vsock_call call = VSOCK_CALL_INIT;
        struct vsock_file_entry *e = NULL;
        size_t n = 0;
        r = vsock_list_files_at(addr, p, &call, &e, &n);
        if (r < 0) {
                report(r, &call, addr, p);
                return cli_exit_code_for(r);
        }

        int width = 1;
        for (size_t i = 0; i < n; i++) {
                int w = snprintf(NULL, 0, "%" PRId64, e[i].size);
                width = MAX(width, w);
        }
        for (size_t i = 0; i < n; i++) {
                if (long_fmt) {
                        char ms[11];
                        mode_string(e[i].mode, e[i].is_dir, ms);
                        printf("%s %*" PRId64 " %s\n", ms, width, e[i].size, e[i].name);
                } else
                        printf("%s\n", e[i].name);
        }
        vsock_file_entries_free(e, n);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                if (errno != EPIPE)
                        cli_error("(stdout): %m");
                return CLI_EXIT_FAILURE;
        }
        return CLI_EXIT_OK;
}
