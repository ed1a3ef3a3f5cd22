/* vsockctl cp and cat: moving files between this machine and the guest.
 *
 * A file travels in one request (ReadFile, WriteFile); what the base
 * protocol lacks comes from guestfs.h: the mode of a downloaded file, and
 * whole trees (-r) as tar streams through exec. On a terminal, cp shows a
 * spinner with the size and elapsed time while a request runs, then one
 * summary line. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
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
#include "common/sha256.h"
#include "lib/tar_fs.h"
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

/* ---- the streaming path (extensions file-get, file-put) -------------------------- */

/* What cp was asked beyond the copy itself. */
struct cp_opts {
        bool preserve;          /* -p: mode, owner and mtime */
        bool resume;            /* -c: continue a broken transfer */
        enum vsock_checksum checksum; /* --checksum (AUTO: not given) */
};

/* A streaming copy found the agent without the feature: nothing was done,
 * the base protocol does the copy. */
#define CP_BASE_ONLY (-1)

/* Whether @addr's agent is known (cached) to lack @feature. */
static bool known_without(const char *addr, unsigned feature) {
        struct vsock_caps caps = VSOCK_CAPS_INIT;
        int r = vsock_caps_lookup(addr, &caps);
        if (r == -ENOENT || (r < 0 && vsock_err_kind(r) != VSOCK_E_UNSUPPORTED))
                return false; /* unknown: try, Hello goes with the request */
        return r < 0 || !(caps.features & feature);
}

/* A streaming copy failed with @r: whether the base protocol should do it
 * instead, i.e. the agent lacks @feature itself. An agent with the
 * feature but not the checksum --checksum named is an error to report:
 * the base protocol has no checksum at all. */
static bool base_fallback(int r, const char *addr, unsigned feature) {
        return vsock_err_kind(r) == VSOCK_E_UNSUPPORTED && known_without(addr, feature);
}

/* What a base agent's copy cannot honour, for the "ignored" warning. */
static const char *base_ignored(const struct cp_opts *o) {
        return o->resume ? "-c" : o->preserve ? "-p" : o->checksum ? "--checksum" : NULL;
}

/* An extension operation's failure: the guest's words for file errors. */
static int stream_report(int rc, const struct vsock_call *call, const char *addr, const char *path) {
        enum vsock_errkind k = vsock_err_kind(rc);
        if (k == VSOCK_E_REMOTE && vsock_err_errno(rc) == EISDIR)
                cli_error(":%s: is a directory (use cp -r)", path);
        else if ((k == VSOCK_E_REMOTE || k == VSOCK_E_CHECKSUM || k == VSOCK_E_LIMIT) && call->remote_error[0])
                cli_error(":%s: %s", path, call->remote_error);
        else {
                agent_report(rc, call, "cp", addr);
                return CLI_EXIT_ERROR;
        }
        return CLI_EXIT_FAILURE;
}

static void progress_bytes(void *userdata, uint64_t done, uint64_t total) {
        struct progress *p = userdata;
        (void) total;
        /* The spinner thread reads it; a torn size string only flickers. */
        cli_format_size(done, p->size, sizeof p->size);
}

/* The partial of a download into @target: ".NAME.vsockctl-part" beside it. */
static char *part_name(const char *target) {
        _cleanup_free_ char *dir = guestfs_dir_name(target), *base = guestfs_base_name(target);
        char *p = NULL;
        if (!dir || !base || asprintf(&p, "%s/.%s.vsockctl-part", dir, base) < 0)
                return NULL;
        return p;
}

/* Give a finished download its mode (the source's less the umask for a
 * new file, the old file's for a replaced one; -p: the source's mode,
 * owner and mtime). Best effort for the owner, as cp -p. */
static int apply_attrs(int fd, const char *target, const struct vsock_file_stat *st, const struct cp_opts *o) {
        struct stat old;
        mode_t mask = umask(0);
        umask(mask);
        mode_t mode = st->mode & 0777 & ~mask;
        if (o->preserve) {
                mode = st->mode & 07777;
                (void) fchown(fd, st->uid, st->gid);
                struct timespec ts[2] = {
                        { .tv_sec = st->atime_ns / NS_PER_SEC, .tv_nsec = st->atime_ns % NS_PER_SEC },
                        { .tv_sec = st->mtime_ns / NS_PER_SEC, .tv_nsec = st->mtime_ns % NS_PER_SEC },
                };
                if (st->atime_ns < 0 || st->mtime_ns < 0 || futimens(fd, ts) < 0)
                        cli_error("%s: cannot set its times: %m", target);
        } else if (stat(target, &old) == 0 && S_ISREG(old.st_mode))
                mode = old.st_mode & 07777;
        return fchmod(fd, mode) < 0 ? -errno : 0;
}

/* Download guest file @gsrc to local @target ("-": stdout): into a partial
 * beside the target, renamed over it when complete (-c continues a
 * partial a broken download left). Returns an exit status or
 * CP_BASE_ONLY. */
static int stream_download(const char *addr, const char *gsrc, const char *target, struct progress *prog,
                           const struct cp_opts *o) {
        if (known_without(addr, VSOCK_FEATURE_FILE_GET))
                return CP_BASE_ONLY;
        bool to_stdout = strcmp(target, "-") == 0;
        _cleanup_free_ char *part = to_stdout ? NULL : part_name(target);
        if (!to_stdout && !part)
                return CLI_EXIT_ERROR;
        _cleanup_close_ int fd = -1;
        struct stat pst = {};
        bool existed = false;
        if (!to_stdout) {
                existed = o->resume && stat(part, &pst) == 0 && S_ISREG(pst.st_mode);
                fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | (o->resume ? 0 : O_TRUNC), 0600);
                if (fd < 0) {
                        cli_error("%s: %m", part);
                        return CLI_EXIT_FAILURE;
                }
        }
        struct vsock_file_get_opts go = VSOCK_FILE_GET_OPTS_INIT;
        go.fd = to_stdout ? STDOUT_FILENO : fd;
        go.offset = existed ? (uint64_t) pst.st_size : 0;
        go.progress = prog->bg.running ? progress_bytes : NULL;
        go.userdata = prog;
        /* --reply-timeout bounds the agent's silence, not the transfer. */
        go.idle_timeout_ns = cli_opts.reply_timeout_ns;
        go.checksum = o->checksum;
        struct vsock_file_get_result res = {};
        struct vsock_call call = VSOCK_CALL_INIT;
        vsock_conn *c = NULL;
        int r = agent_dial(addr, VSOCK_PORT_EXEC, "cp", &c);
        if (r >= 0) {
                call.deadline_ns = agent_reply_deadline();
                r = vsock_file_get(c, gsrc, &go, &call, &res);
                (void) vsock_conn_close(c);
        }
        progress_stop(prog, r >= 0, r >= 0 ? (int64_t) (go.offset + res.received) : -1);
        if (r < 0) {
                /* Nothing arrived (the agent refused, or has no streams):
                 * no partial either. A broken transfer keeps its bytes for -c. */
                struct stat now;
                bool empty = fd >= 0 && fstat(fd, &now) == 0 && now.st_size == 0;
                if (fd >= 0 && (empty || vsock_err_kind(r) == VSOCK_E_UNSUPPORTED) && !existed)
                        (void) unlink(part);
                if (base_fallback(r, addr, VSOCK_FEATURE_FILE_GET))
                        return CP_BASE_ONLY;
                if (!c)
                        return CLI_EXIT_ERROR;
                return stream_report(r, &call, addr, gsrc);
        }
        if (to_stdout)
                return CLI_EXIT_OK;
        r = apply_attrs(fd, target, &res.stat, o);
        if (r >= 0 && rename(part, target) < 0)
                r = -errno;
        if (r < 0) {
                cli_error("%s: %s", target, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        return CLI_EXIT_OK;
}

static ssize_t read_source(void *userdata, void *buf, size_t n) {
        ssize_t k = io_read_once(*(int *) userdata, buf, n);
        if (k == -EAGAIN) {
                int r = io_wait(*(int *) userdata, POLLIN, 0, -1);
                return r < 0 ? r : read_source(userdata, buf, n);
        }
        return k;
}

/* An upload's id: the same source and target give the same id, so that
 * -c finds what a broken upload left. */
static void upload_id(const char *src, const char *gdst, const struct stat *st, char out[33]) {
        char key[PATH_MAX * 2 + 64];
        _cleanup_free_ char *abs = realpath(src, NULL);
        int n = snprintf(key, sizeof key, "%s\n%s\n%lld\n%lld.%ld", abs ? abs : src, gdst, (long long) st->st_size,
                         (long long) st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
        uint8_t d[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];
        sha256_digest(key, (size_t) MAX(n, 0), d);
        sha256_to_hex(d, hex);
        memcpy(out, hex, 32);
        out[32] = '\0';
}

/* Upload local @src ("-": stdin) to guest @gdst, or into @gdst/@name when
 * @gdst is a directory (and @name is given). Returns an exit status or
 * CP_BASE_ONLY. */
static int stream_upload(const char *addr, const char *src, const char *gdst, const char *name,
                         struct progress *prog, const struct cp_opts *o) {
        if (known_without(addr, VSOCK_FEATURE_FILE_PUT))
                return CP_BASE_ONLY;
        bool from_stdin = strcmp(src, "-") == 0;
        _cleanup_close_ int own = from_stdin ? -1 : open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        int fd = from_stdin ? STDIN_FILENO : own;
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
                cli_error("%s: %m", src);
                return CLI_EXIT_FAILURE;
        }
        if (S_ISDIR(st.st_mode)) {
                cli_error("%s: is a directory (use cp -r)", src);
                return CLI_EXIT_FAILURE;
        }
        struct vsock_file_put_opts po = VSOCK_FILE_PUT_OPTS_INIT;
        char id[33];
        if (S_ISREG(st.st_mode)) {
                po.fd = fd;
                upload_id(src, gdst, &st, id);
                po.upload_id = id;
                po.resume = o->resume;
                if (!from_stdin)
                        po.mode = o->preserve ? (st.st_mode & 07777) : (st.st_mode & 0777);
        } else {
                po.source = read_source;
                po.userdata = &fd;
        }
        if (o->preserve && !from_stdin) {
                po.uid = st.st_uid;
                po.gid = st.st_gid;
                po.mtime_ns = st.st_mtim.tv_sec * NS_PER_SEC + st.st_mtim.tv_nsec;
        }
        po.idle_timeout_ns = cli_opts.reply_timeout_ns;
        po.checksum = o->checksum;
        progress_start(prog, prog->label, S_ISREG(st.st_mode) ? st.st_size : -1);
        _cleanup_free_ char *into = NULL;
        for (;;) {
                struct vsock_file_put_result res;
                struct vsock_call call = VSOCK_CALL_INIT;
                vsock_conn *c = NULL;
                int r = agent_dial(addr, VSOCK_PORT_EXEC, "cp", &c);
                if (r >= 0) {
                        call.deadline_ns = agent_reply_deadline();
                        r = vsock_file_put(c, into ? into : gdst, &po, &call, &res);
                        (void) vsock_conn_close(c);
                }
                /* An existing guest directory: into it, as cp does. */
                if (r < 0 && !into && name && po.fd >= 0 && vsock_err_kind(r) == VSOCK_E_REMOTE &&
                    vsock_err_errno(r) == EISDIR) {
                        if (asprintf(&into, "%s/%s", gdst, name) < 0)
                                return CLI_EXIT_ERROR;
                        upload_id(src, into, &st, id);
                        continue;
                }
                progress_stop(prog, r >= 0, -1);
                if (r >= 0)
                        return CLI_EXIT_OK;
                /* (Refused at Hello: no byte of the source was read.) */
                if (base_fallback(r, addr, VSOCK_FEATURE_FILE_PUT))
                        return CP_BASE_ONLY;
                if (!c)
                        return CLI_EXIT_ERROR;
                return stream_report(r, &call, addr, into ? into : gdst);
        }
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

static int stream_copy_tree_down(const char *addr, const char *gsrc, const char *dst, const char *name,
                                 const struct cp_opts *o);
static int stream_copy_tree_up(const char *addr, const char *src, const char *gdir, const char *arcname,
                               const struct cp_opts *o);

static int copy_tree_down(const char *addr, const char *gsrc, const char *dst, const struct cp_opts *o) {
        _cleanup_free_ char *name = guestfs_base_name(gsrc), *target = NULL;
        if (!name)
                return CLI_EXIT_ERROR;
        int sr = stream_copy_tree_down(addr, gsrc, dst, name, o);
        if (sr != CP_BASE_ONLY)
                return sr;
        if (local_is_dir(dst) ? asprintf(&target, "%s/%s", dst, name) < 0 : !(target = strdup(dst)))
                return CLI_EXIT_ERROR;
        if (mkdir(target, 0777) < 0 && !(errno == EEXIST && local_is_dir(target))) {
                cli_error("%s: %m", target);
                return CLI_EXIT_FAILURE;
        }
        char *argv[] = { "tar", "-C", target, "-xf", "-", "--no-same-owner", NULL };
        return tar_pipeline(addr, argv, true, guestfs_tar_out, gsrc, target);
}

static int copy_tree_up(const char *addr, const char *src, const char *gdst, const struct cp_opts *o) {
        _cleanup_free_ char *name = guestfs_base_name(src), *target = NULL;
        if (!name)
                return CLI_EXIT_ERROR;
        /* Into an existing directory, as cp -r does; else the copy's name. */
        struct vsock_file_entry e = {};
        bool into = gdst[strlen(gdst) - 1] == '/' || (guestfs_stat(addr, gdst, &e) >= 0 && e.is_dir);
        free(e.name);
        _cleanup_free_ char *gparent = into ? strdup(gdst) : guestfs_dir_name(gdst);
        _cleanup_free_ char *arcname = into ? strdup(name) : guestfs_base_name(gdst);
        if (!gparent || !arcname)
                return CLI_EXIT_ERROR;
        int sr = stream_copy_tree_up(addr, src, gparent, arcname, o);
        if (sr != CP_BASE_ONLY)
                return sr;
        if (into ? asprintf(&target, "%s/%s", gdst, name) < 0 : !(target = strdup(gdst)))
                return CLI_EXIT_ERROR;
        char *argv[] = { "tar", "-C", (char *) src, "-cf", "-", ".", NULL };
        return tar_pipeline(addr, argv, false, guestfs_tar_in, target, src);
}

/* ---- trees on the streaming path (tar-get, tar-put) ------------------------------ */

/* A tree's transfer ended with @r: its exit status (or CP_BASE_ONLY),
 * with the local side's error (@local_err, about @local) when it was ours. */
static int tree_status(int r, bool dialed, const struct vsock_call *call, const char *addr, unsigned feature,
                       const char *gpath, const char *local, const char *local_err) {
        if (r >= 0)
                return CLI_EXIT_OK;
        if (base_fallback(r, addr, feature))
                return CP_BASE_ONLY;
        if (!dialed)
                return CLI_EXIT_ERROR;
        if (vsock_err_kind(r) == VSOCK_E_ERRNO && local_err[0]) {
                cli_error("%s: %s", local, local_err);
                return CLI_EXIT_FAILURE;
        }
        return stream_report(r, call, addr, gpath);
}

static int extract_sink(void *userdata, const void *data, size_t n) { return tar_extract_write(userdata, data, n); }

/* Archive stream of guest tree @gsrc into local directory @root: its
 * entries start with the tree's name. Returns an exit status or
 * CP_BASE_ONLY. */
static int stream_tree_down(const char *addr, const char *gsrc, const char *root, const struct cp_opts *o) {
        if (known_without(addr, VSOCK_FEATURE_TAR_GET))
                return CP_BASE_ONLY;
        _cleanup_close_ int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rfd < 0) {
                cli_error("%s: %m", root);
                return CLI_EXIT_FAILURE;
        }
        struct tar_extract *x = NULL;
        int r = tar_extract_new(rfd, o->preserve ? TAR_X_OWNER : 0, &x);
        if (r < 0) {
                cli_error("%s: %s", root, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        struct vsock_tar_opts to = VSOCK_TAR_OPTS_INIT;
        to.sink = extract_sink;
        to.userdata = x;
        to.idle_timeout_ns = cli_opts.reply_timeout_ns;
        to.checksum = o->checksum;
        struct vsock_tar_result res;
        struct vsock_call call = VSOCK_CALL_INIT;
        vsock_conn *c = NULL;
        r = agent_dial(addr, VSOCK_PORT_EXEC, "cp", &c);
        if (r >= 0) {
                call.deadline_ns = agent_reply_deadline();
                r = vsock_tar_get(c, gsrc, &to, &call, &res);
                (void) vsock_conn_close(c);
        }
        int f = r >= 0 ? tar_extract_finish(x) : 0;
        int status = tree_status(r, c != NULL, &call, addr, VSOCK_FEATURE_TAR_GET, gsrc, root, tar_extract_error(x));
        if (status == CLI_EXIT_OK && f < 0) {
                cli_error("%s: %s", root, tar_extract_error(x));
                status = CLI_EXIT_FAILURE;
        }
        tar_extract_free(x);
        return status;
}

/* cp -r :GUEST DST: into DST/NAME when DST is a directory, else as DST
 * (extracted beside it first, then renamed). */
static int stream_copy_tree_down(const char *addr, const char *gsrc, const char *dst, const char *name,
                                 const struct cp_opts *o) {
        if (local_is_dir(dst))
                return stream_tree_down(addr, gsrc, dst, o);
        _cleanup_free_ char *dir = guestfs_dir_name(dst), *tmp = NULL, *from = NULL;
        if (!dir || asprintf(&tmp, "%s/.vsockctl-tree-XXXXXX", dir) < 0)
                return CLI_EXIT_ERROR;
        if (!mkdtemp(tmp)) {
                cli_error("%s: %m", dir);
                return CLI_EXIT_FAILURE;
        }
        int r = stream_tree_down(addr, gsrc, tmp, o);
        if (r == CLI_EXIT_OK && (asprintf(&from, "%s/%s", tmp, name) < 0 || rename(from, dst) < 0)) {
                cli_error("%s: %m", dst);
                r = CLI_EXIT_FAILURE;
        }
        if (r != CLI_EXIT_OK) {
                /* What arrived goes (the directory is ours). */
                char *argv[] = { "rm", "-rf", tmp, NULL };
                pid_t pid;
                if (local_tar(argv, -1, -1, &pid) >= 0)
                        (void) wait_tar(pid);
        } else
                (void) rmdir(tmp);
        return r;
}

static ssize_t walk_source(void *userdata, void *buf, size_t n) { return tar_walk_read(userdata, buf, n); }

/* cp -r SRC :GUEST: the local tree as an archive whose entries start with
 * @arcname, extracted into guest directory @gdir. Returns an exit status
 * or CP_BASE_ONLY. */
static int stream_copy_tree_up(const char *addr, const char *src, const char *gdir, const char *arcname,
                               const struct cp_opts *o) {
        if (known_without(addr, VSOCK_FEATURE_TAR_PUT))
                return CP_BASE_ONLY;
        _cleanup_free_ char *sdir = guestfs_dir_name(src), *sname = guestfs_base_name(src);
        if (!sdir || !sname)
                return CLI_EXIT_ERROR;
        _cleanup_close_ int dfd = open(sdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct tar_walk *w = NULL;
        int r = dfd < 0 ? -errno : tar_walk_new(dfd, sname, arcname, NULL, NULL, &w);
        if (r < 0) {
                cli_error("%s: %s", src, strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        struct vsock_tar_opts to = VSOCK_TAR_OPTS_INIT;
        to.source = walk_source;
        to.userdata = w;
        to.preserve_owner = o->preserve;
        to.idle_timeout_ns = cli_opts.reply_timeout_ns;
        to.checksum = o->checksum;
        struct vsock_tar_result res;
        struct vsock_call call = VSOCK_CALL_INIT;
        vsock_conn *c = NULL;
        r = agent_dial(addr, VSOCK_PORT_EXEC, "cp", &c);
        if (r >= 0) {
                call.deadline_ns = agent_reply_deadline();
                r = vsock_tar_put(c, gdir, &to, &call, &res);
                (void) vsock_conn_close(c);
        }
        int status = tree_status(r, c != NULL, &call, addr, VSOCK_FEATURE_TAR_PUT, gdir, src, tar_walk_error(w));
        tar_walk_free(w);
        return status;
}

/* ---- cp ------------------------------------------------------------------------- */

static void cp_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] cp [-r] [-p] [-c] [--checksum=ALG] SRC DST\n"
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
              "  vsockctl cp -c ./disk.img :/data/          continue a broken upload\n"
              "\n"
              "  -r, --recursive  copy directories: as tar streams (TarGet/TarPut) when the\n"
              "                   agent has them, else tar(1) runs here and, through exec,\n"
              "                   in the guest (which needs /bin/sh and tar)\n"
              "  -p, --preserve   keep mode (set-id bits too), owner and modification time\n"
              "  -c, --resume     continue what a broken transfer left (the partial file)\n"
              "      --checksum=ALG  check streamed copies with sha256 or crc32c (default:\n"
              "                   crc32c when the agent has it, else sha256)\n"
              "  -h, --help       show this help\n"
              "\n"
              "A new file gets the source's permissions less the umask, without set-id\n"
              "bits; an existing file keeps its own. With an agent that streams files\n"
              "(features file-get, file-put) any size travels, checked end to end (by\n"
              "CRC-32C, or SHA-256 with --checksum=sha256 or an agent without\n"
              "checksum-crc32c) and replaced atomically on either side: a download goes\n"
              "to DIR/.NAME.vsockctl-part first, and a broken transfer keeps what arrived\n"
              "for -c (an upload's partial stays in the guest for an hour). Base agents\n"
              "move a file in one message: downloads are limited to 16 MiB, uploads to\n"
              "what fits one frame (about 48 MiB), and -p, -c and --checksum are ignored.\n"
              "On a terminal a spinner with the size and elapsed time is shown on stderr.\n"
              "\n"
              "Exit status: 0 on success, 1 if a file operation failed, 255 for usage,\n"
              "connection and protocol errors.\n",
              f);
}

static int cp_download(const char *addr, const char *src, const char *gsrc, const char *dst,
                       const struct cp_opts *o) {
        _cleanup_(free_datap) uint8_t *data = NULL;
        _cleanup_free_ char *label = NULL, *target = NULL, *name = guestfs_base_name(gsrc);
        size_t len = 0;
        struct progress prog;
        if (!name || asprintf(&label, "%s -> %s", src, dst) < 0)
                return CLI_EXIT_ERROR;
        bool to_stdout = strcmp(dst, "-") == 0;
        if (!to_stdout && local_is_dir(dst) && asprintf(&target, "%s/%s", dst, name) < 0)
                return CLI_EXIT_ERROR;
        progress_start(&prog, label, -1);
        int r = stream_download(addr, gsrc, target ? target : dst, &prog, o);
        if (r != CP_BASE_ONLY)
                return r;
        if (base_ignored(o))
                cli_error("cp: the agent does not support file-get: %s ignored", base_ignored(o));
        progress_start(&prog, label, -1);
        r = guest_read(addr, gsrc, &prog, &data, &len);
        if (r != CLI_EXIT_OK)
                return r;
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

static int cp_upload(const char *addr, const char *src, const char *gdst, const struct cp_opts *o) {
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
        if (asprintf(&label, "%s -> :%s", src, gdst) < 0)
                return CLI_EXIT_ERROR;
        prog.label = label;
        int r = stream_upload(addr, src, gdst, from_stdin ? NULL : name, &prog, o);
        if (r != CP_BASE_ONLY)
                return r;
        if (base_ignored(o))
                cli_error("cp: the agent does not support file-put: %s ignored", base_ignored(o));
        mode_t mode = 0;
        r = local_read(src, write_limit(gdst), &data, &len, &mode);
        if (r != CLI_EXIT_OK)
                return r;
        progress_start(&prog, label, (int64_t) len);
        if (from_stdin)
                return guest_write(addr, gdst, &prog, data, len, mode, false);
        return guest_write_or_into(addr, gdst, name, &prog, data, len, mode);
}

int cmd_cp(int argc, char **argv) {
        bool recursive = false;
        struct cp_opts o = {};
        const char *checksum = NULL;
        const struct cli_flag flags[] = {
                { 'r', "recursive", &recursive },
                { 'p', "preserve", &o.preserve },
                { 'c', "resume", &o.resume },
                { 0, "checksum", NULL, &checksum },
        };
        int r = cli_parse_flags("cp", argc, argv, flags, ARRAY_SIZE(flags), cp_usage);
        if (r >= 0)
                return r;
        if (checksum && strcmp(checksum, "sha256") == 0)
                o.checksum = VSOCK_CHECKSUM_SHA256;
        else if (checksum && strcmp(checksum, "crc32c") == 0)
                o.checksum = VSOCK_CHECKSUM_CRC32C;
        else if (checksum)
                return cli_usage_error("cp", "--checksum: \"%s\" is not sha256 or crc32c", checksum);
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
                        return copy_tree_up(addr, src, gdst, &o);
                struct vsock_file_entry e = {};
                bool tree = gsrc && guestfs_stat(addr, gsrc, &e) >= 0 && (e.is_dir || S_ISLNK(e.mode));
                free(e.name);
                if (tree) {
                        if (strcmp(dst, "-") == 0)
                                return cli_usage_error("cp", "a directory cannot go to stdout");
                        return copy_tree_down(addr, gsrc, dst, &o);
                }
                /* A file: copied as without -r. */
        }
        if (gsrc && gdst)
                return cp_guest_to_guest(addr, src, gsrc, gdst);
        if (gsrc)
                return cp_download(addr, src, gsrc, dst, &o);
        return cp_upload(addr, src, gdst, &o);
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
