/* vsockctl cp and cat: moving files between this machine and the guest.
 *
 * A file travels in one request (ReadFile, WriteFile); what the base
 * protocol lacks comes from guestfs.h: the mode of a downloaded file, and
 * whole trees (-r) as tar streams through exec. On a terminal, cp shows a
 * spinner with the size and elapsed time while a request runs, then one
 * summary line. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"
#include "common/buf.h"
#include "common/io.h"
#include "common/macro.h"
#include "bgthread.h"
#include "guestfs.h"

extern char **environ;

/* Guest paths are written ":/path"; cat accepts a bare path too. */
static const char *guest_path(const char *arg) { return arg[0] == ':' ? arg + 1 : NULL; }

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
        struct bgthread bg;
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
        do
                progress_draw(p, spinner[i++ % 4]);
        while (!bgthread_sleep(&p->bg, 100 * 1000 * 1000));
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
        (void) bgthread_start(&p->bg, progress_thread, p);
}

/* Stop the spinner; on success leave a summary line (with the final size,
 * or -1 to keep the one given at start), on failure just clear it. */
static void progress_stop(struct progress *p, bool ok, int64_t size) {
        if (!p->bg.running)
                return;
        bgthread_stop(&p->bg);
        if (size >= 0)
                cli_format_size((uint64_t) size, p->size, sizeof p->size);
        if (ok)
                progress_draw(p, 0);
        else {
                fputs("\r\033[K", stderr);
                fflush(stderr);
        }
}

/* ---- guest side ------------------------------------------------------------- */

/* The guest's own words for a failed file operation; the address and the
 * library's reason for anything else (connection, protocol). */
static void report(int rc, const struct vsock_call *call, const char *addr, const char *path) {
        if (vsock_err_kind(rc) == VSOCK_E_FILE_REMOTE && call->remote_error[0])
                cli_error(":%s: %s", path, call->remote_error);
        else
                agent_report(rc, call, "cp", addr);
}

/* After a failed read: a directory or a file above the protocol's read
 * limit is said plainly (the agents' wording differs). Returns true if
 * that was the reason and it has been reported. */
static bool explain_read_failure(const char *addr, const char *path) {
        struct vsock_file_entry e = {};
        if (guestfs_stat(addr, path, &e) < 0)
                return false;
        bool said = true;
        if (e.is_dir)
                cli_error(":%s: is a directory (use cp -r)", path);
        else if (e.size > (int64_t) VSOCK_READ_FILE_MAX)
                cli_error(":%s: file exceeds the protocol's %u MiB read limit", path,
                          VSOCK_READ_FILE_MAX / (1024 * 1024));
        else
                said = false;
        free(e.name);
        return said;
}

/* Read a guest file; reports errors itself and returns an exit status. */
static int guest_read(const char *addr, const char *path, struct progress *prog, uint8_t **ret_data,
                      size_t *ret_len) {
        struct vsock_call call = VSOCK_CALL_INIT;
        vsock_conn *c = NULL;
        int r = agent_dial(addr, VSOCK_PORT_EXEC, "cp", &c);
        if (r >= 0) {
                call.deadline_ns = agent_reply_deadline();
                r = vsock_read_file(c, path, &call, ret_data, ret_len);
                (void) vsock_conn_close(c);
        }
        if (prog)
                progress_stop(prog, r >= 0, r >= 0 ? (int64_t) *ret_len : -1);
        if (r >= 0)
                return CLI_EXIT_OK;
        if (!c)
                return CLI_EXIT_ERROR; /* agent_dial() said why */
        if (vsock_err_kind(r) == VSOCK_E_FILE_REMOTE && explain_read_failure(addr, path))
                return CLI_EXIT_FAILURE;
        if (vsock_err_kind(r) == VSOCK_E_FRAME_TOO_LARGE) {
                cli_error(":%s: file exceeds the protocol's %u MiB read limit", path,
                          VSOCK_READ_FILE_MAX / (1024 * 1024));
                return CLI_EXIT_FAILURE;
        }
        report(r, &call, addr, path);
        return cli_exit_code_for(r);
}

/* Write a guest file. Quiet when @quiet_eisdir and the target is a
 * directory (returns -EISDIR then, for the caller to copy into it). */
static int guest_write(const char *addr, const char *path, struct progress *prog, const void *data, size_t len,
                       mode_t mode, bool quiet_eisdir) {
        struct vsock_call call = VSOCK_CALL_INIT;
        vsock_conn *c = NULL;
        int r = agent_dial(addr, VSOCK_PORT_EXEC, "cp", &c);
        if (r >= 0) {
                call.deadline_ns = agent_reply_deadline();
                r = vsock_write_file(c, path, data, len, mode, &call);
                (void) vsock_conn_close(c);
        }
        if (prog)
                progress_stop(prog, r >= 0, -1);
        if (r >= 0)
                return CLI_EXIT_OK;
        if (!c)
                return CLI_EXIT_ERROR;
        if (quiet_eisdir && vsock_err_kind(r) == VSOCK_E_FILE_REMOTE && vsock_err_errno(r) == EISDIR)
                return -EISDIR;
        report(r, &call, addr, path);
        return cli_exit_code_for(r);
}

/* Write @path, or, as cp does, @dir/@name when @path is an existing
 * directory (without a trailing '/' we only learn that from the agent). */
static int guest_write_or_into(const char *addr, const char *path, const char *name, struct progress *prog,
                               const void *data, size_t len, mode_t mode) {
        int r = guest_write(addr, path, prog, data, len, mode, true);
        if (r != -EISDIR)
                return r;
        _cleanup_free_ char *into = NULL;
        if (asprintf(&into, "%s/%s", path, name) < 0)
                return CLI_EXIT_ERROR;
        return guest_write(addr, into, NULL, data, len, mode, false);
}

/* The permissions a copy of guest file @path gets (cp without -p: the
 * source's, less set-id bits; the umask applies on creation), or @fallback
 * when the agent cannot say. */
static mode_t guest_mode(const char *addr, const char *path, mode_t fallback) {
        struct vsock_file_entry e = {};
        if (guestfs_stat(addr, path, &e) < 0)
                return fallback;
        free(e.name);
        return (e.mode & 07777) ? (e.mode & 0777) : fallback;
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
                cli_error("%s: is a directory (use cp -r)", shown);
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

/* Write a local file ("-": stdout). A new file gets @mode less the umask;
 * an existing one keeps its own, as with cp. */
static int local_write(const char *name, const uint8_t *data, size_t len, mode_t mode) {
        _cleanup_close_ int own = -1;
        int fd = STDOUT_FILENO;
        if (strcmp(name, "-") != 0) {
                own = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, mode);
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

static bool local_is_dir(const char *path) {
        struct stat st;
        return stat(path, &st) >= 0 && S_ISDIR(st.st_mode);
}

/* ---- trees (-r) --------------------------------------------------------------- */

/* Start tar(1) here with stdin from @in_fd or stdout to @out_fd. */
static int local_tar(char *const *argv, int in_fd, int out_fd, pid_t *ret_pid) {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        if (in_fd >= 0)
                posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO);
        if (out_fd >= 0)
                posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
        int r = posix_spawnp(ret_pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        return -r;
}

static int wait_tar(pid_t pid) {
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* One tar here and one in the guest, joined by a pipe: @local_argv reads
 * the pipe (@down) or writes it, @remote the other end of it, on guest
 * directory @gdir. Returns an exit status; failures are reported. */
typedef int (*guest_tar_fn)(const char *addr, const char *dir, int fd, struct vsock_call *call);

static int tar_pipeline(const char *addr, char *const *local_argv, bool down, guest_tar_fn remote, const char *gdir,
                        const char *local_dir) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
                cli_error("cp: pipe: %m");
                return CLI_EXIT_ERROR;
        }
        int ours = down ? p[0] : p[1], theirs = down ? p[1] : p[0];
        pid_t pid;
        int r = local_tar(local_argv, down ? ours : -1, down ? -1 : ours, &pid);
        safe_close(ours);
        if (r < 0) {
                safe_close(theirs);
                cli_error("cp: cannot run tar here: %s", strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        struct vsock_call call = VSOCK_CALL_INIT;
        r = remote(addr, gdir, theirs, &call);
        safe_close(theirs);
        int local = wait_tar(pid);
        if (r > 0) {
                cli_error(":%s: tar in the guest failed (status %d)", gdir, r);
                return CLI_EXIT_FAILURE;
        }
        if (r < 0) {
                if (vsock_err_kind(r) == VSOCK_E_REMOTE)
                        cli_error(":%s: cannot run tar in the guest: %s", gdir, call.remote_error);
                else if (!agent_dial_failed(r))
                        agent_report(r, &call, "cp", addr);
                return CLI_EXIT_ERROR;
        }
        if (local != 0) {
                cli_error("%s: tar here failed (status %d)", local_dir, local);
                return CLI_EXIT_FAILURE;
        }
        return CLI_EXIT_OK;
}

static int copy_tree_down(const char *addr, const char *gsrc, const char *dst) {
        _cleanup_free_ char *name = guestfs_base_name(gsrc), *target = NULL;
        if (!name)
                return CLI_EXIT_ERROR;
        if (local_is_dir(dst) ? asprintf(&target, "%s/%s", dst, name) < 0 : !(target = strdup(dst)))
                return CLI_EXIT_ERROR;
        if (mkdir(target, 0777) < 0 && !(errno == EEXIST && local_is_dir(target))) {
                cli_error("%s: %m", target);
                return CLI_EXIT_FAILURE;
        }
        char *argv[] = { "tar", "-C", target, "-xf", "-", "--no-same-owner", NULL };
        return tar_pipeline(addr, argv, true, guestfs_tar_out, gsrc, target);
}

static int copy_tree_up(const char *addr, const char *src, const char *gdst) {
        _cleanup_free_ char *name = guestfs_base_name(src), *target = NULL;
        if (!name)
                return CLI_EXIT_ERROR;
        /* Into an existing directory, as cp -r does; else the copy's name. */
        struct vsock_file_entry e = {};
        bool into = gdst[strlen(gdst) - 1] == '/' || (guestfs_stat(addr, gdst, &e) >= 0 && e.is_dir);
        free(e.name);
        if (into ? asprintf(&target, "%s/%s", gdst, name) < 0 : !(target = strdup(gdst)))
                return CLI_EXIT_ERROR;
        char *argv[] = { "tar", "-C", (char *) src, "-cf", "-", ".", NULL };
        return tar_pipeline(addr, argv, false, guestfs_tar_in, target, src);
}

/* ---- cp ------------------------------------------------------------------------- */

static void cp_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] cp [-r] SRC DST\n"
              "\n"
              "Copy a file (or with -r a directory tree) between this machine and the\n"
              "guest. A guest path is written :/path; the other side is a local path, or\n"
              "'-' for stdin/stdout. Both sides may be guest paths (the data passes\n"
              "through this machine; files only).\n"
              "\n"
              "  vsockctl cp ./app.conf :/etc/app.conf      upload (keeps the permissions)\n"
              "  vsockctl cp :/var/log/app.log .            download into a directory\n"
              "  vsockctl cp ./tool :/usr/local/bin         into an existing directory, as\n"
              "                                             cp does (a trailing '/' too)\n"
              "  vsockctl cp -r ./site :/srv/               a tree, through tar\n"
              "\n"
              "  -r, --recursive  copy directories: tar(1) runs here and, through exec,\n"
              "                   in the guest (which needs /bin/sh and tar)\n"
              "  -h, --help       show this help\n"
              "\n"
              "A new file gets the source's permissions less the umask, without set-id\n"
              "bits; an existing file keeps its own. The protocol moves a file in one\n"
              "message: downloads are limited to 16 MiB by the agent, uploads to what\n"
              "fits one frame (about 48 MiB). On a terminal a spinner with the size and\n"
              "elapsed time is shown on stderr.\n"
              "\n"
              "Exit status: 0 on success, 1 if a file operation failed, 255 for usage,\n"
              "connection and protocol errors.\n",
              f);
}

static int cp_download(const char *addr, const char *src, const char *gsrc, const char *dst) {
        _cleanup_(free_datap) uint8_t *data = NULL;
        _cleanup_free_ char *label = NULL, *target = NULL, *name = guestfs_base_name(gsrc);
        size_t len = 0;
        struct progress prog;
        if (!name || asprintf(&label, "%s -> %s", src, dst) < 0)
                return CLI_EXIT_ERROR;
        progress_start(&prog, label, -1);
        int r = guest_read(addr, gsrc, &prog, &data, &len);
        if (r != CLI_EXIT_OK)
                return r;
        bool to_stdout = strcmp(dst, "-") == 0;
        if (!to_stdout && local_is_dir(dst) && asprintf(&target, "%s/%s", dst, name) < 0)
                return CLI_EXIT_ERROR;
        mode_t mode = to_stdout ? 0 : guest_mode(addr, gsrc, 0666);
        return local_write(target ? target : dst, data, len, mode);
}

static int cp_guest_to_guest(const char *addr, const char *src, const char *gsrc, const char *gdst) {
        _cleanup_(free_datap) uint8_t *data = NULL;
        _cleanup_free_ char *target = NULL, *name = guestfs_base_name(gsrc);
        size_t len = 0;
        if (!name)
                return CLI_EXIT_ERROR;
        int r = guest_read(addr, gsrc, NULL, &data, &len);
        if (r != CLI_EXIT_OK)
                return r;
        if (gdst[strlen(gdst) - 1] == '/' && asprintf(&target, "%s%s", gdst, name) < 0)
                return CLI_EXIT_ERROR;
        mode_t mode = guest_mode(addr, gsrc, 0);
        return guest_write_or_into(addr, target ? target : gdst, name, NULL, data, len, mode);
}

static int cp_upload(const char *addr, const char *src, const char *gdst) {
        _cleanup_(free_datap) uint8_t *data = NULL;
        _cleanup_free_ char *target = NULL, *label = NULL, *name = guestfs_base_name(src);
        size_t len = 0;
        struct progress prog;
        if (!name)
                return CLI_EXIT_ERROR;
        bool from_stdin = strcmp(src, "-") == 0;
        if (gdst[strlen(gdst) - 1] == '/') {
                if (from_stdin)
                        return cli_usage_error("cp", "a guest directory needs a file name when reading stdin");
                if (asprintf(&target, "%s%s", gdst, name) < 0)
                        return CLI_EXIT_ERROR;
                gdst = target;
        }
        mode_t mode = 0;
        int r = local_read(src, write_limit(gdst), &data, &len, &mode);
        if (r != CLI_EXIT_OK)
                return r;
        if (asprintf(&label, "%s -> :%s", src, gdst) < 0)
                return CLI_EXIT_ERROR;
        progress_start(&prog, label, (int64_t) len);
        if (from_stdin)
                return guest_write(addr, gdst, &prog, data, len, mode, false);
        return guest_write_or_into(addr, gdst, name, &prog, data, len, mode);
}

int cmd_cp(int argc, char **argv) {
        bool recursive = false;
        const struct cli_flag flags[] = { { 'r', "recursive", &recursive } };
        int r = cli_parse_flags("cp", argc, argv, flags, ARRAY_SIZE(flags), cp_usage);
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

        if (recursive) {
                if (gsrc && gdst)
                        return cli_usage_error("cp", "-r copies between this machine and the guest only");
                if (gdst && local_is_dir(src))
                        return copy_tree_up(addr, src, gdst);
                struct vsock_file_entry e = {};
                bool tree = gsrc && guestfs_stat(addr, gsrc, &e) >= 0 && (e.is_dir || S_ISLNK(e.mode));
                free(e.name);
                if (tree) {
                        if (strcmp(dst, "-") == 0)
                                return cli_usage_error("cp", "a directory cannot go to stdout");
                        return copy_tree_down(addr, gsrc, dst);
                }
                /* A file: copied as without -r. */
        }
        if (gsrc && gdst)
                return cp_guest_to_guest(addr, src, gsrc, gdst);
        if (gsrc)
                return cp_download(addr, src, gsrc, dst);
        return cp_upload(addr, src, gdst);
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
        int r = cli_parse_flags("cat", argc, argv, NULL, 0, cat_usage);
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
