/* go-agent-fake: the observable behaviour of the Go reference agent, for
 * interop tests of the client library and vsockctl.
 *
 *   go-agent-fake --listen unix:EXEC_SOCK [--ready unix:READY_SOCK]
 *
 * Modelled on the upstream agent in jingkaihe/matchlock:
 * internal/guestruntime/agent/main.go at 26efe885bb02 (exec batch/stream,
 * pipe, TTY, port forward, file operations; the exec port bound before the
 * ready port), its sandbox_proc.go at 5906c7fa8c2f (commands start through
 * a launcher that switches user and execs; its failures are a "matchlock:"
 * line on stderr and exit 127) and errors.go at 1b30d322cd34, plus the
 * per-connection write lock of framing_test.go at 92ec99103df7 (older
 * versions let stdout and stderr frames interleave mid-frame). What a host
 * can observe, and this fake does:
 *
 * - One request per connection, a goroutine (here a thread) each. The
 *   payload is read whole, whatever its announced size (capped here at
 *   64 MiB); an unknown type closes the connection without a word.
 * - Every command is `sh -c command`: `args` is decoded (a wrong type is
 *   an error) and ignored. env is added to the agent's environment; user
 *   goes to the launcher. A working directory that does not exist fails
 *   the start, in Go's words "fork/exec /proc/self/exe: no such file or
 *   directory" (the launcher is what Go failed to start; the directory is
 *   not named).
 * - The shell is PID 1 of a new PID namespace (when we may make one, i.e.
 *   as root): it ignores every signal it has no handler for, from its own
 *   commands (`kill -9 $$` does nothing) and from the agent (only the
 *   grace period's SIGKILL ends it), and its children's deaths are its
 *   own exit status.
 * - Frames go out as two writes, header then payload (one for an empty
 *   payload). JSON is Go's: ExecResponse always has all four fields
 *   ("stdout":null when empty, "error":""); FileResponse omits empty
 *   ones ({} for success); <, >, & are escaped, invalid UTF-8 becomes
 *   \ufffd. Exit codes of commands killed by a signal are -1.
 * - Batch (1) and stream (11): ExecResult at the end, then close; a start
 *   failure is ExecResult {exit_code 1, error}. Any byte or EOF from the
 *   host while the command runs (a half-close too) sends SIGTERM to its
 *   process group, SIGKILL 5 s later. Batch ignores `stdin`.
 * - Pipe (12): Stdin frames to the command's stdin, an empty one closes it
 *   and ends reading from the host; Signal goes to the process group; a
 *   read error (host gone) before that kills as above. A start failure is
 *   Stderr "failed to start command: ...\n" and Exit 1. The end is Exit,
 *   100 ms, close.
 * - TTY (9): a pty as controlling terminal of a new session; Stdin writes
 *   to it (an empty frame does nothing: no EOF), Resize sets its size,
 *   Signal goes to the process alone. Nothing is killed when the host
 *   goes away. A start failure is Exit 1 without a word. The end is Exit,
 *   100 ms, close. (Upstream may send Exit before the last output it
 *   read; this fake drains the pty first, so tests are deterministic.)
 * - Port forward (13): host defaults to 127.0.0.1; port 0 is refused
 *   with Stderr "invalid remote port 0", a failed dial with Stderr
 *   "connect HOST:PORT failed: dial tcp HOST:PORT: connect: <reason>";
 *   else Ready and raw bytes both ways; EOF from the host half-closes the
 *   target, the connection closes once both directions are done.
 * - WriteFile (14): mode 0 means 0644, parent directories 0755, the
 *   umask applies and an existing file keeps its mode (os.WriteFile);
 *   ReadFile (15): regular files up to 16 MiB; ListFiles (16): entries
 *   sorted by name, lstat's size and mode in Go's FileMode bits, a
 *   non-directory is "readdirent PATH: not a directory".
 * - The ready port accepts and closes.
 *
 * Not modelled: the mount namespace with its own /proc, and the launcher's
 * seccomp filter and capability drops.
 *
 * Checked against the upstream agent itself, built from those sources with
 * Go 1.19 outside this tree (AF_VSOCK swapped for unix sockets): vsockctl's
 * suite (test_cli.py with AGENT_KIND=go) gives the same results on both. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum {
        T_EXEC = 1, T_EXEC_RESULT, T_STDOUT, T_STDERR, T_SIGNAL, T_READY, T_STDIN, T_RESIZE, T_EXEC_TTY,
        T_EXIT, T_EXEC_STREAM, T_EXEC_PIPE, T_PORT_FORWARD, T_WRITE_FILE, T_READ_FILE, T_LIST_FILES,
        T_FILE_RESULT,
};

#define PAYLOAD_CAP (64u * 1024 * 1024)
#define READ_FILE_MAX (16 * 1024 * 1024)
#define GRACE_SECONDS 5

/* ---- growable text -------------------------------------------------------------- */

struct text {
        char *p;
        size_t len, cap;
};

static void text_add(struct text *t, const void *s, size_t n) {
        if (t->len + n + 1 > t->cap) {
                size_t cap = t->cap ? t->cap : 256;
                while (cap < t->len + n + 1)
                        cap *= 2;
                char *np = realloc(t->p, cap);
                if (!np)
                        abort();
                t->p = np;
                t->cap = cap;
        }
        memcpy(t->p + t->len, s, n);
        t->len += n;
        t->p[t->len] = '\0';
}

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(struct text *t, const char *fmt, ...) {
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        text_add(t, buf, (size_t) (n < (int) sizeof buf ? n : (int) sizeof buf - 1));
}

/* The length of the UTF-8 sequence at @s (of @n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
        unsigned c = s[0];
        size_t len;
        uint32_t cp;
        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                len = 4, cp = c & 0x07;
        else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                return 0;
        return len;
}

/* A JSON string as Go's encoding/json writes it. */
static void text_json_str(struct text *t, const char *s, size_t n) {
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *) s;
        text_add(t, "\"", 1);
        for (size_t i = 0; i < n;) {
                unsigned c = p[i];
                if (c == '"' || c == '\\') {
                        char e[2] = { '\\', (char) c };
                        text_add(t, e, 2);
                        i++;
                } else if (c == '\n' || c == '\r' || c == '\t') {
                        char e[2] = { '\\', c == '\n' ? 'n' : c == '\r' ? 'r' : 't' };
                        text_add(t, e, 2);
                        i++;
                } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                        char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
                        text_add(t, e, 6);
                        i++;
                } else if (c < 0x80) {
                        text_add(t, p + i, 1);
                        i++;
                } else {
                        size_t l = utf8_len(p + i, n - i);
                        if (l == 0) {
                                text_add(t, "\\ufffd", 6);
                                i++;
                        } else if (l == 3 && p[i] == 0xe2 && p[i + 1] == 0x80 && (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
                                text_add(t, p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
                                i += 3;
                        } else {
                                text_add(t, p + i, l);
                                i += l;
                        }
                }
        }
        text_add(t, "\"", 1);
}

static void text_base64(struct text *t, const uint8_t *d, size_t n) {
        static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        text_add(t, "\"", 1);
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t) d[i] << 16 | (i + 1 < n ? (uint32_t) d[i + 1] << 8 : 0) |
                             (i + 2 < n ? d[i + 2] : 0);
                char q[4] = { a[v >> 18], a[(v >> 12) & 63], i + 1 < n ? a[(v >> 6) & 63] : '=',
                              i + 2 < n ? a[v & 63] : '=' };
                text_add(t, q, 4);
        }
        text_add(t, "\"", 1);
}

/* A []byte field: null when empty (a nil slice), as the agent's structs
 * have no omitempty. */
static void text_bytes_or_null(struct text *t, const uint8_t *d, size_t n) {
        if (n == 0)
                text_add(t, "null", 4);
        else
                text_base64(t, d, n);
}

/* Go's text for an errno: the C library's, lower-cased first letter. */
static void go_errno_text(int e, char *buf, size_t size) {
        snprintf(buf, size, "%s", strerror(e));
        if (buf[0] >= 'A' && buf[0] <= 'Z')
                buf[0] = (char) (buf[0] - 'A' + 'a');
}

/* ---- one connection ------------------------------------------------------------- */

struct conn {
        int fd;
        pthread_mutex_t write_lock;
};

static bool read_full(int fd, void *buf, size_t n) {
        size_t got = 0;
        while (got < n) {
                ssize_t r = read(fd, (char *) buf + got, n - got);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return false;
                got += (size_t) r;
        }
        return true;
}

static void write_full(int fd, const void *buf, size_t n) {
        size_t done = 0;
        while (done < n) {
                /* write(2): sockets, pipes, ptys and files alike; SIGPIPE
                 * is ignored process-wide. */
                ssize_t r = write(fd, (const char *) buf + done, n - done);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return; /* Go ignores write errors here */
                done += (size_t) r;
        }
}

/* Header, then payload: two writes, as sendMessage does. */
static void send_msg(struct conn *c, uint8_t type, const void *data, size_t n) {
        uint8_t h[5] = { type, (uint8_t) (n >> 24), (uint8_t) (n >> 16), (uint8_t) (n >> 8), (uint8_t) n };
        pthread_mutex_lock(&c->write_lock);
        write_full(c->fd, h, sizeof h);
        if (n > 0)
                write_full(c->fd, data, n);
        pthread_mutex_unlock(&c->write_lock);
}

static void send_exit(struct conn *c, int code) {
        uint32_t v = (uint32_t) code;
        uint8_t d[4] = { (uint8_t) (v >> 24), (uint8_t) (v >> 16), (uint8_t) (v >> 8), (uint8_t) v };
        send_msg(c, T_EXIT, d, 4);
}

static bool read_msg(int fd, uint8_t *ret_type, uint8_t **ret_data, uint32_t *ret_len) {
        uint8_t h[5];
        if (!read_full(fd, h, 5))
                return false;
        uint32_t n = (uint32_t) h[1] << 24 | (uint32_t) h[2] << 16 | (uint32_t) h[3] << 8 | h[4];
        if (n > PAYLOAD_CAP)
                return false;
        uint8_t *d = malloc(n + 1u);
        if (!d || !read_full(fd, d, n)) {
                free(d);
                return false;
        }
        d[n] = 0;
        *ret_type = h[0];
        *ret_data = d;
        *ret_len = n;
        return true;
}

static void send_exec_response(struct conn *c, int code, const uint8_t *out, size_t out_n, const uint8_t *err,
                               size_t err_n, const char *error) {
        struct text t = { 0 };
        text_printf(&t, "{\"exit_code\":%d,\"stdout\":", code);
        text_bytes_or_null(&t, out, out_n);
        text_add(&t, ",\"stderr\":", 10);
        text_bytes_or_null(&t, err, err_n);
        text_add(&t, ",\"error\":", 9);
        text_json_str(&t, error ? error : "", error ? strlen(error) : 0);
        text_add(&t, "}", 1);
        send_msg(c, T_EXEC_RESULT, t.p, t.len);
        free(t.p);
}

static void send_file_response(struct conn *c, const struct text *body) {
        send_msg(c, T_FILE_RESULT, body->p, body->len);
}

static void send_file_error(struct conn *c, const char *error) {
        struct text t = { 0 };
        text_add(&t, "{\"error\":", 9);
        text_json_str(&t, error, strlen(error));
        text_add(&t, "}", 1);
        send_file_response(c, &t);
        free(t.p);
}

/* ---- requests ------------------------------------------------------------------- */

struct exec_req {
        char *command;
        char *working_dir;
        char *user;
        char **env; /* "K=V" */
        size_t n_env;
        uint16_t rows, cols;
};

static void exec_req_free(struct exec_req *r) {
        free(r->command);
        free(r->working_dir);
        free(r->user);
        for (size_t i = 0; i < r->n_env; i++)
                free(r->env[i]);
        free(r->env);
}

/* Go's json.Unmarshal into ExecRequest / ExecTTYRequest: unknown fields
 * ignored, wrong types an error, args checked and dropped. */
static bool parse_exec(const uint8_t *d, size_t n, struct exec_req *r, char *why, size_t why_size) {
        json_error_t je;
        json_t *o = json_loadb((const char *) d, n, JSON_DECODE_ANY, &je);
        *r = (struct exec_req) { 0 };
        if (!o || !json_is_object(o)) {
                snprintf(why, why_size, "%s", o ? "json: cannot unmarshal into Go value of type main.ExecRequest"
                                                : "unexpected end of JSON input");
                json_decref(o);
                return false;
        }
        bool ok = true;
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) {
                if (json_is_null(v))
                        continue;
                if (strcmp(key, "command") == 0 || strcmp(key, "working_dir") == 0 || strcmp(key, "user") == 0) {
                        if (!json_is_string(v)) {
                                ok = false;
                                break;
                        }
                        char *s = strdup(json_string_value(v));
                        char **dst = key[0] == 'c' ? &r->command : key[0] == 'w' ? &r->working_dir : &r->user;
                        free(*dst);
                        *dst = s;
                } else if (strcmp(key, "args") == 0) {
                        size_t i;
                        json_t *a;
                        if (!json_is_array(v)) {
                                ok = false;
                                break;
                        }
                        json_array_foreach(v, i, a) ok &= json_is_string(a);
                } else if (strcmp(key, "env") == 0) {
                        if (!json_is_object(v)) {
                                ok = false;
                                break;
                        }
                        const char *k;
                        json_t *ev;
                        json_object_foreach(v, k, ev) {
                                if (!json_is_string(ev)) {
                                        ok = false;
                                        break;
                                }
                                char **ne = realloc(r->env, (r->n_env + 1) * sizeof *ne);
                                if (!ne || asprintf(&ne[r->n_env], "%s=%s", k, json_string_value(ev)) < 0)
                                        abort();
                                r->env = ne;
                                r->n_env++;
                        }
                } else if (strcmp(key, "rows") == 0 || strcmp(key, "cols") == 0) {
                        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535) {
                                ok = false;
                                break;
                        }
                        *(key[0] == 'r' ? &r->rows : &r->cols) = (uint16_t) json_integer_value(v);
                }
        }
        json_decref(o);
        if (!ok) {
                snprintf(why, why_size, "json: cannot unmarshal value into Go struct field");
                exec_req_free(r);
                *r = (struct exec_req) { 0 };
        }
        if (ok && !r->command)
                r->command = strdup("");
        return ok;
}

/* ---- starting commands --------------------------------------------------------- */

/* The launcher's user lookup (sandbox_proc.go): "uid", "uid:gid", or a
 * name from /etc/passwd. Done before the clone, so that the child only
 * makes system calls; a failure is the launcher's line for the child to
 * print. */
struct launch_user {
        bool set, ok;
        uid_t uid;
        gid_t gid;
        char msg[300];
};

static void resolve_user(const char *spec, struct launch_user *u) {
        *u = (struct launch_user) { .set = spec && *spec };
        if (!u->set)
                return;
        char *end, buf[4096];
        struct passwd pw, *res = NULL;
        const char *colon = strchr(spec, ':');
        unsigned long v = strtoul(spec, &end, 10);
        if (colon) {
                /* Numbers only here; names in uid:gid form are rare in tests. */
                u->uid = (uid_t) v;
                u->gid = (gid_t) strtoul(colon + 1, NULL, 10);
        } else if (*spec && !*end) {
                u->uid = (uid_t) v;
                u->gid = getpwuid_r(u->uid, &pw, buf, sizeof buf, &res) == 0 && res ? pw.pw_gid : (gid_t) v;
        } else if (getpwnam_r(spec, &pw, buf, sizeof buf, &res) == 0 && res) {
                u->uid = pw.pw_uid;
                u->gid = pw.pw_gid;
        } else {
                snprintf(u->msg, sizeof u->msg, "matchlock: resolve user \"%s\": user not found: \"%s\"\n", spec,
                         spec);
                return;
        }
        u->ok = true;
}

struct child {
        pid_t pid;
        int in, out, err; /* our ends; -1 if none */
        int master;       /* tty mode */
};

/* What the cloned child needs; it only makes system calls. */
struct launch {
        const struct exec_req *r;
        bool tty, with_stdin;
        int in, out, err, slave, report;
        char **envp;
        struct launch_user user;
};

static int child_main(void *arg) {
        const struct launch *l = arg;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (l->tty) {
                setsid();
                ioctl(l->slave, TIOCSCTTY, 0);
                dup2(l->slave, 0);
                dup2(l->slave, 1);
                dup2(l->slave, 2);
        } else {
                setpgid(0, 0);
                /* Without a stdin of its own (exec.Cmd.Stdin nil): /dev/null. */
                int null = l->with_stdin ? -1 : open("/dev/null", O_RDONLY);
                dup2(l->with_stdin ? l->in : null, 0);
                dup2(l->out, 1);
                dup2(l->err, 2);
        }
        signal(SIGPIPE, SIG_DFL);
        if (l->r->working_dir && *l->r->working_dir && chdir(l->r->working_dir) < 0) {
                int e = errno;
                (void) !write(l->report, &e, sizeof e);
                _exit(127);
        }
        /* From here on the launcher runs: its failures are the command's
         * (stderr, 127), not start failures. */
        if (l->user.set) {
                if (!l->user.ok) {
                        (void) !write(2, l->user.msg, strlen(l->user.msg));
                        _exit(127);
                }
                if (setgroups(1, &l->user.gid) < 0 || setgid(l->user.gid) < 0 || setuid(l->user.uid) < 0) {
                        static const char m[] = "matchlock: setuid failed\n";
                        (void) !write(2, m, sizeof m - 1);
                        _exit(127);
                }
        }
        execle("/bin/sh", "sh", "-c", l->r->command, (char *) NULL, l->envp);
        static const char m[] = "matchlock: exec sh: failed\n";
        (void) !write(2, m, sizeof m - 1);
        _exit(127);
}

/* Start `sh -c command` as Go's exec.Cmd with the sandbox's SysProcAttr
 * does: PID 1 of a new PID namespace (so it shrugs off signals it has no
 * handler for, from inside as from outside, but SIGKILL from us), its own
 * process group (or session and terminal), SIGKILL when we die. Without
 * the privilege for a namespace, a plain child. Returns 0, or -errno of a
 * start failure with Go's text in @why. */
static int start_command(const struct exec_req *r, bool tty, bool with_stdin, struct child *ret, char *why,
                         size_t why_size) {
        int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, report[2];
        int master = -1, slave = -1;
        if (pipe2(report, O_CLOEXEC) < 0)
                return -errno;
        if (tty) {
                struct winsize ws = { .ws_row = 24, .ws_col = 80 };
                if (openpty(&master, &slave, NULL, NULL, &ws) < 0)
                        return -errno;
                fcntl(master, F_SETFD, FD_CLOEXEC);
        } else if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
                return -errno;

        /* The environment: ours, then the request's (later wins in Go). */
        size_t n_env = 0;
        for (char **e = environ; *e; e++)
                n_env++;
        char **envp = calloc(n_env + r->n_env + 2, sizeof *envp);
        if (!envp)
                abort();
        memcpy(envp, environ, n_env * sizeof *envp);
        if (r->n_env > 0)
                memcpy(envp + n_env, r->env, r->n_env * sizeof *envp);

        struct launch l = { .r = r, .tty = tty, .with_stdin = with_stdin, .in = in[0], .out = out[1],
                            .err = err[1], .slave = slave, .report = report[1], .envp = envp };
        resolve_user(r->user, &l.user);
        /* No CLONE_VM: the child runs on a copy of this stack. */
        enum { STACK = 256 * 1024 };
        char *stack = malloc(STACK);
        if (!stack)
                abort();
        pid_t pid = clone(child_main, stack + STACK, CLONE_NEWPID | SIGCHLD, &l);
        if (pid < 0 && (errno == EPERM || errno == EINVAL))
                pid = clone(child_main, stack + STACK, SIGCHLD, &l);
        int clone_errno = errno;
        free(stack);
        free(envp);
        close(report[1]);
        if (pid < 0) {
                close(report[0]);
                return -clone_errno;
        }
        int e = 0;
        ssize_t got = read(report[0], &e, sizeof e);
        close(report[0]);
        if (tty) {
                close(slave);
        } else {
                close(in[0]);
                close(out[1]);
                close(err[1]);
        }
        if (got == (ssize_t) sizeof e) {
                waitpid(pid, NULL, 0);
                /* Go reports a failed chdir of the child as a failed exec
                 * of what it runs: the launcher, /proc/self/exe. */
                char et[128];
                go_errno_text(e, et, sizeof et);
                snprintf(why, why_size, "fork/exec /proc/self/exe: %s", et);
                if (tty)
                        close(master);
                else {
                        close(in[1]);
                        close(out[0]);
                        close(err[0]);
                }
                return -e;
        }
        *ret = (struct child) { .pid = pid, .in = in[1], .out = out[0], .err = err[0], .master = master };
        return 0;
}

/* Go's ProcessState.ExitCode(): the status, or -1 when killed by a signal. */
static int wait_code(pid_t pid) {
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* monitorVsockCancel and the pipe reader's error path: SIGTERM to the
 * group, SIGKILL after the grace unless the command ended. */
struct killer {
        pid_t pid;
        pthread_mutex_t lock;
        bool done;
};

static void killer_fire(struct killer *k) {
        pthread_mutex_lock(&k->lock);
        bool done = k->done;
        pthread_mutex_unlock(&k->lock);
        if (done)
                return;
        kill(-k->pid, SIGTERM);
        for (int i = 0; i < GRACE_SECONDS * 20; i++) {
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                nanosleep(&ts, NULL);
                pthread_mutex_lock(&k->lock);
                done = k->done;
                pthread_mutex_unlock(&k->lock);
                if (done)
                        return;
        }
        kill(-k->pid, SIGKILL);
}

static struct killer *killer_new(pid_t pid) {
        struct killer *k = calloc(1, sizeof *k);
        if (!k)
                abort();
        k->pid = pid;
        pthread_mutex_init(&k->lock, NULL);
        return k;
}

static void killer_free(struct killer *k) {
        pthread_mutex_destroy(&k->lock);
        free(k);
}

static void killer_done(struct killer *k) {
        pthread_mutex_lock(&k->lock);
        k->done = true;
        pthread_mutex_unlock(&k->lock);
}

struct monitor {
        struct conn *c;
        struct killer *k;
};

static void *monitor_main(void *arg) {
        struct monitor *m = arg;
        uint8_t b;
        /* One byte, EOF or error: all the same to upstream. */
        while (read(m->c->fd, &b, 1) < 0 && errno == EINTR)
                ;
        killer_fire(m->k);
        return NULL;
}

struct pump {
        struct conn *c;
        int fd;
        uint8_t type;
        struct text *collect; /* batch: collect instead of sending */
};

static void *pump_main(void *arg) {
        struct pump *p = arg;
        uint8_t buf[4096];
        for (;;) {
                ssize_t n = read(p->fd, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (p->collect)
                        text_add(p->collect, buf, (size_t) n);
                else
                        send_msg(p->c, p->type, buf, (size_t) n);
        }
        return NULL;
}

/* Both output pipes until EOF (sent as frames, or collected), then the
 * command's exit code; the killer stands down. */
static int pump_both(struct conn *c, const struct child *ch, struct text *out, struct text *err, struct killer *k) {
        struct pump po = { c, ch->out, T_STDOUT, out }, pe = { c, ch->err, T_STDERR, err };
        pthread_t to, te;
        pthread_create(&to, NULL, pump_main, &po);
        pthread_create(&te, NULL, pump_main, &pe);
        pthread_join(to, NULL);
        pthread_join(te, NULL);
        int code = wait_code(ch->pid);
        killer_done(k);
        close(ch->out);
        close(ch->err);
        return code;
}

static void detach_thread(void *(*fn)(void *), void *arg) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, fn, arg) != 0)
                abort();
        pthread_attr_destroy(&a);
}

/* Batch (1) and stream (11). */
static void handle_exec(struct conn *c, const uint8_t *d, uint32_t n, bool stream) {
        struct exec_req r;
        char why[512];
        if (!parse_exec(d, n, &r, why, sizeof why)) {
                send_exec_response(c, 0, NULL, 0, NULL, 0, why);
                return;
        }
        struct child ch;
        if (start_command(&r, false, false, &ch, why, sizeof why) < 0) {
                send_exec_response(c, 1, NULL, 0, NULL, 0, why);
                exec_req_free(&r);
                return;
        }
        exec_req_free(&r);
        close(ch.in); /* the request's stdin is ignored */

        struct killer *k = killer_new(ch.pid);
        struct monitor m = { .c = c, .k = k };
        pthread_t mon;
        if (pthread_create(&mon, NULL, monitor_main, &m) != 0)
                abort();
        struct text out = { 0 }, err = { 0 };
        int code = pump_both(c, &ch, stream ? NULL : &out, stream ? NULL : &err, k);
        send_exec_response(c, code, (const uint8_t *) out.p, out.len, (const uint8_t *) err.p, err.len, NULL);
        /* The caller closes the connection, which ends the monitor's read. */
        shutdown(c->fd, SHUT_RDWR);
        pthread_join(mon, NULL);
        killer_free(k);
        free(out.p);
        free(err.p);
}

struct pipe_reader {
        struct conn *c;
        struct child *ch;
        struct killer *k;
};

static void *pipe_reader_main(void *arg) {
        struct pipe_reader *pr = arg;
        for (;;) {
                uint8_t t, *d;
                uint32_t n;
                if (!read_msg(pr->c->fd, &t, &d, &n)) {
                        if (pr->ch->in >= 0)
                                close(pr->ch->in);
                        pr->ch->in = -1;
                        killer_fire(pr->k);
                        return NULL;
                }
                if (t == T_STDIN) {
                        if (n == 0) {
                                close(pr->ch->in);
                                pr->ch->in = -1;
                                free(d);
                                return NULL; /* and reads nothing more */
                        }
                        write_full(pr->ch->in, d, n);
                } else if (t == T_SIGNAL && n >= 1) {
                        kill(-pr->ch->pid, d[0]);
                }
                free(d);
        }
}

static void linger_and_close_later(void) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
}

/* Pipe (12). */
static void handle_pipe(struct conn *c, const uint8_t *d, uint32_t n) {
        struct exec_req r;
        char why[512], line[600];
        if (!parse_exec(d, n, &r, why, sizeof why)) {
                int l = snprintf(line, sizeof line, "failed to decode exec request: %s\n", why);
                send_msg(c, T_STDERR, line, (size_t) l);
                send_exit(c, 1);
                return;
        }
        struct child ch;
        if (start_command(&r, false, true, &ch, why, sizeof why) < 0) {
                int l = snprintf(line, sizeof line, "failed to start command: %s\n", why);
                send_msg(c, T_STDERR, line, (size_t) l);
                send_exit(c, 1);
                exec_req_free(&r);
                return;
        }
        exec_req_free(&r);
        /* Writes to a command that stopped reading fail quietly. */
        signal(SIGPIPE, SIG_IGN);
        struct child *chp = malloc(sizeof *chp);
        if (!chp)
                abort();
        *chp = ch;
        struct killer *k = killer_new(ch.pid);
        struct pipe_reader pr = { c, chp, k };
        pthread_t rd;
        pthread_create(&rd, NULL, pipe_reader_main, &pr);
        int code = pump_both(c, &ch, NULL, NULL, k);
        send_exit(c, code);
        linger_and_close_later();
        shutdown(c->fd, SHUT_RDWR);
        pthread_join(rd, NULL);
        if (chp->in >= 0)
                close(chp->in);
        killer_free(k);
        free(chp);
}

struct tty_reader {
        struct conn *c;
        int master;
        pid_t pid;
};

static void *tty_reader_main(void *arg) {
        struct tty_reader *tr = arg;
        for (;;) {
                uint8_t t, *d;
                uint32_t n;
                if (!read_msg(tr->c->fd, &t, &d, &n))
                        return NULL; /* nothing is killed */
                if (t == T_STDIN && n > 0)
                        write_full(tr->master, d, n);
                else if (t == T_RESIZE && n >= 4) {
                        struct winsize ws = { .ws_row = (unsigned short) (d[0] << 8 | d[1]),
                                              .ws_col = (unsigned short) (d[2] << 8 | d[3]) };
                        ioctl(tr->master, TIOCSWINSZ, &ws);
                } else if (t == T_SIGNAL && n >= 1)
                        kill(tr->pid, d[0]);
                free(d);
        }
}

/* TTY (9). */
static void handle_tty(struct conn *c, const uint8_t *d, uint32_t n) {
        struct exec_req r;
        char why[512];
        if (!parse_exec(d, n, &r, why, sizeof why)) {
                send_exit(c, 1);
                return;
        }
        struct child ch;
        int rc = start_command(&r, true, true, &ch, why, sizeof why);
        uint16_t rows = r.rows, cols = r.cols;
        exec_req_free(&r);
        if (rc < 0) {
                send_exit(c, 1);
                return;
        }
        if (rows > 0 && cols > 0) {
                struct winsize ws = { .ws_row = rows, .ws_col = cols };
                ioctl(ch.master, TIOCSWINSZ, &ws);
        }
        struct tty_reader *tr = malloc(sizeof *tr);
        if (!tr)
                abort();
        *tr = (struct tty_reader) { c, ch.master, ch.pid };
        pthread_t rd;
        pthread_create(&rd, NULL, tty_reader_main, tr);

        /* Output until the process is gone and the pty says so. */
        int code = -2;
        uint8_t buf[4096];
        for (;;) {
                struct pollfd p = { .fd = ch.master, .events = POLLIN };
                int pr = poll(&p, 1, 50);
                if (pr > 0) {
                        ssize_t k = read(ch.master, buf, sizeof buf);
                        if (k > 0) {
                                send_msg(c, T_STDOUT, buf, (size_t) k);
                                continue;
                        }
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (code != -2)
                                break; /* EIO: no writer left */
                }
                if (code == -2) {
                        int st;
                        pid_t w = waitpid(ch.pid, &st, WNOHANG);
                        if (w == ch.pid)
                                code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
                } else if (pr == 0)
                        break; /* exited, output drained */
        }
        send_exit(c, code);
        linger_and_close_later();
        shutdown(c->fd, SHUT_RDWR);
        pthread_join(rd, NULL);
        close(ch.master);
        free(tr);
}

/* ---- port forward ----------------------------------------------------------------- */

struct copier {
        int from, to;
        bool shut_to; /* CloseWrite the target at EOF */
};

static void *copy_main(void *arg) {
        struct copier *cp = arg;
        uint8_t buf[32 * 1024];
        for (;;) {
                ssize_t n = read(cp->from, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                size_t done = 0;
                while (done < (size_t) n) {
                        ssize_t w = send(cp->to, buf + done, (size_t) n - done, MSG_NOSIGNAL);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0)
                                goto out;
                        done += (size_t) w;
                }
        }
out:
        if (cp->shut_to)
                shutdown(cp->to, SHUT_WR);
        return NULL;
}

static void handle_port_forward(struct conn *c, const uint8_t *d, uint32_t n) {
        json_error_t je;
        json_t *o = json_loadb((const char *) d, n, JSON_DECODE_ANY, &je);
        json_t *jh = o ? json_object_get(o, "host") : NULL, *jp = o ? json_object_get(o, "port") : NULL;
        if (!o || !json_is_object(o) || (jh && !json_is_string(jh) && !json_is_null(jh)) ||
            (jp && !json_is_integer(jp) && !json_is_null(jp))) {
                static const char m[] = "invalid port-forward request: json: cannot unmarshal";
                send_msg(c, T_STDERR, m, sizeof m - 1);
                json_decref(o);
                return;
        }
        char host[256];
        snprintf(host, sizeof host, "%s", jh && json_is_string(jh) && *json_string_value(jh) ? json_string_value(jh)
                                                                                              : "127.0.0.1");
        long port = jp && json_is_integer(jp) ? (long) json_integer_value(jp) : 0;
        json_decref(o);
        if (port == 0) {
                static const char m[] = "invalid remote port 0";
                send_msg(c, T_STDERR, m, sizeof m - 1);
                return;
        }
        char service[8], msg[600];
        snprintf(service, sizeof service, "%ld", port);
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
        int g = getaddrinfo(host, service, &hints, &ai);
        int t = -1, e = 0;
        if (g != 0) {
                int l = snprintf(msg, sizeof msg, "connect %s:%ld failed: dial tcp: lookup %s: no such host", host,
                                 port, host);
                send_msg(c, T_STDERR, msg, (size_t) l);
                return;
        }
        t = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (t < 0 || connect(t, ai->ai_addr, ai->ai_addrlen) < 0)
                e = errno;
        freeaddrinfo(ai);
        if (e) {
                char et[128];
                go_errno_text(e, et, sizeof et);
                int l = snprintf(msg, sizeof msg, "connect %s:%ld failed: dial tcp %s:%ld: connect: %s", host, port,
                                 host, port, et);
                send_msg(c, T_STDERR, msg, (size_t) l);
                if (t >= 0)
                        close(t);
                return;
        }
        send_msg(c, T_READY, NULL, 0);
        struct copier up = { c->fd, t, true }, down = { t, c->fd, false };
        pthread_t a, b;
        pthread_create(&a, NULL, copy_main, &up);
        pthread_create(&b, NULL, copy_main, &down);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        close(t);
}

/* ---- files -------------------------------------------------------------------------- */

/* Go's os.FileMode bits for a stat mode, and back. */
static uint32_t go_mode(mode_t m) {
        uint32_t g = m & 0777;
        switch (m & S_IFMT) {
        case S_IFDIR: g |= 1u << 31; break;
        case S_IFLNK: g |= 1u << 27; break;
        case S_IFIFO: g |= 1u << 25; break;
        case S_IFSOCK: g |= 1u << 24; break;
        case S_IFBLK: g |= 1u << 26; break;
        case S_IFCHR: g |= 1u << 26 | 1u << 21; break;
        default: break;
        }
        if (m & S_ISUID)
                g |= 1u << 23;
        if (m & S_ISGID)
                g |= 1u << 22;
        if (m & S_ISVTX)
                g |= 1u << 20;
        return g;
}

static mode_t perm_from_go(uint32_t g) {
        mode_t m = g & 0777;
        if (g & 1u << 23)
                m |= S_ISUID;
        if (g & 1u << 22)
                m |= S_ISGID;
        if (g & 1u << 20)
                m |= S_ISVTX;
        return m;
}

static void path_error(char *buf, size_t size, const char *op, const char *path, int e) {
        char et[128];
        go_errno_text(e, et, sizeof et);
        snprintf(buf, size, "%s %s: %s", op, path, et);
}

/* os.MkdirAll(dir, 0755). */
static int mkdir_all(const char *path, char *why, size_t why_size) {
        struct stat st;
        if (stat(path, &st) == 0) {
                if (S_ISDIR(st.st_mode))
                        return 0;
                path_error(why, why_size, "mkdir", path, ENOTDIR);
                return -1;
        }
        char *parent = strdup(path);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
                *slash = '\0';
                if (mkdir_all(parent, why, why_size) < 0) {
                        free(parent);
                        return -1;
                }
        }
        free(parent);
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                path_error(why, why_size, "mkdir", path, errno);
                return -1;
        }
        return 0;
}

static void handle_write_file(struct conn *c, const uint8_t *d, uint32_t n) {
        json_error_t je;
        json_t *o = json_loadb((const char *) d, n, JSON_DECODE_ANY, &je);
        json_t *jp = o ? json_object_get(o, "path") : NULL, *jc = o ? json_object_get(o, "content") : NULL,
               *jm = o ? json_object_get(o, "mode") : NULL;
        if (!o || !json_is_object(o) || (jp && !json_is_string(jp)) || (jc && !json_is_string(jc) && !json_is_null(jc)) ||
            (jm && !json_is_integer(jm))) {
                json_decref(o);
                send_file_error(c, "json: cannot unmarshal into Go value of type main.WriteFileRequest");
                return;
        }
        const char *path = jp ? json_string_value(jp) : "";
        uint32_t gm = jm ? (uint32_t) json_integer_value(jm) : 0;
        mode_t mode = gm ? perm_from_go(gm) : 0644;
        /* content: base64 */
        const char *b64 = jc && json_is_string(jc) ? json_string_value(jc) : "";
        size_t blen = strlen(b64), dlen = 0;
        uint8_t *content = malloc(blen / 4 * 3 + 3);
        if (!content)
                abort();
        static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        uint32_t acc = 0;
        int bits = 0;
        for (size_t i = 0; i < blen && b64[i] != '='; i++) {
                const char *q = strchr(alpha, b64[i]);
                if (!q || !*q) {
                        free(content);
                        json_decref(o);
                        send_file_error(c, "illegal base64 data at input byte 0");
                        return;
                }
                acc = acc << 6 | (uint32_t) (q - alpha);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        content[dlen++] = (uint8_t) (acc >> bits);
                }
        }
        char why[600];
        char *dir = strdup(path);
        char *slash = strrchr(dir, '/');
        if (slash)
                *(slash == dir ? slash + 1 : slash) = '\0';
        else
                strcpy(dir, ".");
        if (mkdir_all(dir, why, sizeof why) < 0) {
                send_file_error(c, why);
        } else {
                int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
                if (fd < 0) {
                        path_error(why, sizeof why, "open", path, errno);
                        send_file_error(c, why);
                } else {
                        write_full(fd, content, dlen); /* a regular file: write(2) does it */
                        close(fd);
                        struct text t = { 0 };
                        text_add(&t, "{}", 2);
                        send_file_response(c, &t);
                        free(t.p);
                }
        }
        free(dir);
        free(content);
        json_decref(o);
}

/* The path of a ReadFile or ListFiles request, or NULL once Go's decode
 * error has been sent. *ret_o holds the path: json_decref() it. */
static const char *path_request(struct conn *c, const uint8_t *d, uint32_t n, const char *go_type, json_t **ret_o) {
        json_error_t je;
        json_t *o = json_loadb((const char *) d, n, JSON_DECODE_ANY, &je);
        json_t *jp = o && json_is_object(o) ? json_object_get(o, "path") : NULL;
        *ret_o = o;
        if (!o || !json_is_object(o) || (jp && !json_is_string(jp))) {
                char why[160];
                snprintf(why, sizeof why, "json: cannot unmarshal into Go value of type main.%s", go_type);
                send_file_error(c, why);
                return NULL;
        }
        return jp ? json_string_value(jp) : "";
}

static void handle_read_file(struct conn *c, const uint8_t *d, uint32_t n) {
        json_t *o;
        const char *path = path_request(c, d, n, "ReadFileRequest", &o);
        char why[600];
        if (!path) {
                json_decref(o);
                return;
        }
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
                path_error(why, sizeof why, "open", path, errno);
                send_file_error(c, why);
        } else if (!S_ISREG(st.st_mode)) {
                snprintf(why, sizeof why, "read_file only supports regular files: %s", path);
                send_file_error(c, why);
        } else if (st.st_size > READ_FILE_MAX) {
                snprintf(why, sizeof why, "read_file exceeds %d bytes: %s", READ_FILE_MAX, path);
                send_file_error(c, why);
        } else {
                struct text data = { 0 }, t = { 0 };
                uint8_t buf[65536];
                ssize_t k;
                while ((k = read(fd, buf, sizeof buf)) > 0)
                        text_add(&data, buf, (size_t) k);
                if (data.len == 0) {
                        text_add(&t, "{}", 2); /* content omitted when empty */
                } else {
                        text_add(&t, "{\"content\":", 11);
                        text_base64(&t, (const uint8_t *) data.p, data.len);
                        text_add(&t, "}", 1);
                }
                send_file_response(c, &t);
                free(t.p);
                free(data.p);
        }
        if (fd >= 0)
                close(fd);
        json_decref(o);
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static void handle_list_files(struct conn *c, const uint8_t *d, uint32_t n) {
        json_t *o;
        const char *path = path_request(c, d, n, "ListFilesRequest", &o);
        char why[600];
        if (!path) {
                json_decref(o);
                return;
        }
        DIR *dir = opendir(path);
        if (!dir) {
                /* os.ReadDir opens anything, then fails to read a file. */
                int e = errno;
                path_error(why, sizeof why, e == ENOTDIR ? "readdirent" : "open", path, e);
                send_file_error(c, why);
                json_decref(o);
                return;
        }
        char **names = NULL;
        size_t count = 0;
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                names = realloc(names, (count + 1) * sizeof *names);
                if (!names || !(names[count] = strdup(de->d_name)))
                        abort();
                count++;
        }
        if (count > 1)
                qsort(names, count, sizeof *names, name_cmp);
        struct text t = { 0 };
        size_t shown = 0;
        for (size_t i = 0; i < count; i++) {
                struct stat st;
                if (fstatat(dirfd(dir), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue; /* e.Info() failed: skipped */
                if (shown++ > 0)
                        text_add(&t, ",", 1);
                else
                        text_add(&t, "{\"files\":[", 10);
                text_add(&t, "{\"name\":", 8);
                text_json_str(&t, names[i], strlen(names[i]));
                text_printf(&t, ",\"size\":%lld,\"mode\":%u,\"is_dir\":%s}", (long long) st.st_size, go_mode(st.st_mode),
                            S_ISDIR(st.st_mode) ? "true" : "false");
        }
        text_add(&t, shown ? "]}" : "{}", 2);
        send_file_response(c, &t);
        free(t.p);
        for (size_t i = 0; i < count; i++)
                free(names[i]);
        free(names);
        closedir(dir);
        json_decref(o);
}

/* ---- serving ---------------------------------------------------------------------- */

static void handle_batch(struct conn *c, const uint8_t *d, uint32_t n) {
        handle_exec(c, d, n, false);
}

static void handle_stream(struct conn *c, const uint8_t *d, uint32_t n) {
        handle_exec(c, d, n, true);
}

typedef void (*handler)(struct conn *c, const uint8_t *d, uint32_t n);

/* What the first frame's type selects; anything else is closed without a
 * word. */
static const handler handlers[] = {
        [T_EXEC] = handle_batch,
        [T_EXEC_STREAM] = handle_stream,
        [T_EXEC_PIPE] = handle_pipe,
        [T_EXEC_TTY] = handle_tty,
        [T_PORT_FORWARD] = handle_port_forward,
        [T_WRITE_FILE] = handle_write_file,
        [T_READ_FILE] = handle_read_file,
        [T_LIST_FILES] = handle_list_files,
};

static void *conn_main(void *arg) {
        struct conn *c = arg;
        uint8_t t, *d = NULL;
        uint32_t n;
        if (read_msg(c->fd, &t, &d, &n) && t < sizeof handlers / sizeof *handlers && handlers[t])
                handlers[t](c, d, n);
        free(d);
        close(c->fd);
        pthread_mutex_destroy(&c->write_lock);
        free(c);
        return NULL;
}

static int listen_unix(const char *spec) {
        if (strncmp(spec, "unix:", 5) != 0) {
                fprintf(stderr, "go-agent-fake: only unix: addresses (%s)\n", spec);
                exit(2);
        }
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", spec + 5);
        unlink(sa.sun_path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(fd, 128) < 0) {
                fprintf(stderr, "go-agent-fake: listen %s: %s\n", spec, strerror(errno));
                exit(1);
        }
        return fd;
}

static void *ready_main(void *arg) {
        int l = (int) (intptr_t) arg;
        for (;;) {
                int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
                if (fd >= 0)
                        close(fd);
                else if (errno != EINTR && errno != ECONNABORTED)
                        return NULL;
        }
}

int main(int argc, char **argv) {
        const char *listen_spec = NULL, *ready_spec = NULL;
        for (int i = 1; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--listen") == 0)
                        listen_spec = argv[i + 1];
                else if (strcmp(argv[i], "--ready") == 0)
                        ready_spec = argv[i + 1];
        }
        if (!listen_spec) {
                fprintf(stderr, "usage: go-agent-fake --listen unix:PATH [--ready unix:PATH]\n");
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        /* The exec port first, then readiness (upstream's order). */
        int l = listen_unix(listen_spec);
        if (ready_spec)
                detach_thread(ready_main, (void *) (intptr_t) listen_unix(ready_spec));
        for (;;) {
                int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        return 1;
                }
                struct conn *c = calloc(1, sizeof *c);
                if (!c)
                        abort();
                c->fd = fd;
                pthread_mutex_init(&c->write_lock, NULL);
                detach_thread(conn_main, c);
        }
}
