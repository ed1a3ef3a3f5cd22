/* Guest files over the base protocol, with exec where it falls short
 * (guestfs.h). */
#include "guestfs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "cancel.h"
#include "cli.h"
#include "common/buf.h"
#include "common/io.h"
#include "common/macro.h"

/* A listing of stat(1) lines for up to this many names (and this many
 * bytes of names) per exec: far below what execve() takes. */
#define DETAILS_BATCH_NAMES 2048
#define DETAILS_BATCH_BYTES (128u * 1024)
/* Per entry: one short line, and a link target of at most PATH_MAX. */
#define DETAILS_OUTPUT_MAX (DETAILS_BATCH_NAMES * (128u + 4096u))

/* For each name: "nlink uid gid user group mtime\n", or a line of '?' when
 * stat cannot tell; then the link target, if a symlink; then a NUL. Names
 * come as arguments, so no byte of theirs needs quoting or parsing. */
static const char details_script[] =
        "cd -- \"$1\" || exit 1\n"
        "shift\n"
        "for f do\n"
        "  if s=$(stat -c '%h %u %g %U %G %Y' -- \"$f\" 2>/dev/null); then printf '%s\\n' \"$s\"\n"
        "  else printf '? ? ? ? ? ?\\n'; fi\n"
        "  if [ -L \"$f\" ]; then printf '%s' \"$(readlink -- \"$f\")\"; fi\n"
        "  printf '\\000'\n"
        "done\n";

/* Unpack into a directory made first (with its parents). */
static const char tar_in_script[] = "mkdir -p -- \"$1\" && cd -- \"$1\" && exec tar -xof -";

char *guestfs_base_name(const char *path) {
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/')
                n--;
        size_t s = n;
        while (s > 0 && path[s - 1] != '/')
                s--;
        if (s == n) /* "/" */
                return strdup("/");
        return strndup(path + s, n - s);
}

char *guestfs_dir_name(const char *path) {
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/')
                n--;
        while (n > 0 && path[n - 1] != '/')
                n--;
        if (n == 0)
                return strdup(".");
        while (n > 1 && path[n - 1] == '/')
                n--;
        return strndup(path, n);
}

void guest_details_free(struct guest_details *d, size_t n) {
        if (!d)
                return;
        for (size_t i = 0; i < n; i++)
                free(d[i].link_target);
        free(d);
}

int guestfs_list(const char *addr, const char *path, struct vsock_call *call, struct vsock_file_entry **ret,
                 size_t *ret_n) {
        vsock_conn *c = NULL;
        int r = agent_dial(addr, VSOCK_PORT_EXEC, "ls", &c);
        if (r < 0)
                return r;
        call->deadline_ns = agent_reply_deadline();
        call->cancel_fd = cancel_fd();
        r = vsock_list_files(c, path, call, ret, ret_n);
        (void) vsock_conn_close(c);
        return r;
}

int guestfs_stat(const char *addr, const char *path, struct vsock_file_entry *ret) {
        _cleanup_free_ char *dir = guestfs_dir_name(path), *name = guestfs_base_name(path);
        if (!dir || !name)
                return -ENOMEM;
        struct vsock_call call = VSOCK_CALL_INIT;
        struct vsock_file_entry *e = NULL;
        size_t n = 0;
        int r = guestfs_list(addr, dir, &call, &e, &n);
        if (r < 0)
                return r;
        r = -ENOENT;
        for (size_t i = 0; i < n; i++)
                if (strcmp(e[i].name, name) == 0) {
                        *ret = e[i];
                        e[i].name = NULL; /* handed over */
                        r = 0;
                        break;
                }
        vsock_file_entries_free(e, n);
        return r;
}

/* ---- exec fallbacks --------------------------------------------------------------- */

struct collect {
        struct buf out;
};

static int collect_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        struct collect *col = userdata;
        if (stream != VSOCK_STREAM_STDOUT)
                return 0;
        return buf_append(&col->out, data, len);
}

/* Run @argv[0..argc) in the guest without a shell of ours: stream mode
 * (stdout to @out_fd or @col, stderr to @err_fd), or pipe mode with stdin
 * from @in_fd. Returns the exit status or a negative code. */
static int run_argv(const char *addr, const char *cmd, char **argv, size_t argc, int in_fd, int out_fd, int err_fd,
                    struct collect *col, struct vsock_call *call) {
        struct vsock_exec_request req = { .command = argv[0], .args = argv + 1, .n_args = argc - 1 };
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.stdout_fd = out_fd;
        io.stderr_fd = err_fd;
        io.stdin_fd = in_fd;
        if (col) {
                io.on_output = collect_output;
                io.userdata = col;
        }
        vsock_conn *c = NULL;
        int r = agent_dial(addr, VSOCK_PORT_EXEC, cmd, &c);
        if (r < 0)
                return r;
        struct vsock_exec_result res = {};
        r = in_fd >= 0 ? vsock_exec_pipe(c, &req, &io, call, &res) : vsock_exec_stream(c, &req, &io, call, &res);
        (void) vsock_conn_close(c);
        if (r < 0)
                return r;
        if (res.error && *res.error) {
                snprintf(call->remote_error, sizeof call->remote_error, "%s", res.error);
                vsock_exec_result_clear(&res);
                return VSOCK_ERR(VSOCK_E_REMOTE, EIO);
        }
        int status = cli_map_exit_code(res.exit_code);
        vsock_exec_result_clear(&res);
        return status;
}

/* Parse one batch of details_script's output into @d[0..n). */
static int parse_details(const uint8_t *p, size_t len, struct guest_details *d, size_t n) {
        if (len == 0)
                return n == 0 ? 0 : -EPROTO;
        const uint8_t *end = p + len;
        for (size_t i = 0; i < n; i++) {
                const uint8_t *nl = memchr(p, '\n', (size_t) (end - p));
                if (!nl)
                        return -EPROTO;
                char line[256];
                size_t ll = MIN((size_t) (nl - p), sizeof line - 1);
                memcpy(line, p, ll);
                line[ll] = '\0';
                p = nl + 1;
                const uint8_t *z = memchr(p, '\0', (size_t) (end - p));
                if (!z)
                        return -EPROTO;
                unsigned long long nlink;
                long long mtime;
                unsigned uid, gid;
                char owner[64], group[64];
                if (sscanf(line, "%llu %u %u %63s %63s %lld", &nlink, &uid, &gid, owner, group, &mtime) == 6) {
                        d[i].known = true;
                        d[i].nlink = nlink;
                        d[i].uid = uid;
                        d[i].gid = gid;
                        d[i].mtime = mtime;
                        /* Names stat cannot find show as numbers, as ls does. */
                        if (strcmp(owner, "UNKNOWN") == 0)
                                snprintf(owner, sizeof owner, "%u", uid);
                        if (strcmp(group, "UNKNOWN") == 0)
                                snprintf(group, sizeof group, "%u", gid);
                        snprintf(d[i].owner, sizeof d[i].owner, "%s", owner);
                        snprintf(d[i].group, sizeof d[i].group, "%s", group);
                }
                if (z > p && !(d[i].link_target = strndup((const char *) p, (size_t) (z - p))))
                        return -ENOMEM;
                p = z + 1;
        }
        return 0;
}

int guestfs_details(const char *addr, const char *dir, char *const *names, size_t n, struct guest_details **ret,
                    char *why, size_t why_size) {
        struct guest_details *d = calloc(n ? n : 1, sizeof *d);
        if (!d)
                return -ENOMEM;
        _cleanup_free_ char **argv = malloc((MIN(n, (size_t) DETAILS_BATCH_NAMES) + 5) * sizeof *argv);
        if (!argv) {
                free(d);
                return -ENOMEM;
        }
        int r = 0;
        for (size_t first = 0; first < n && r >= 0;) {
                size_t argc = 0, bytes = 0, k = first;
                argv[argc++] = "sh";
                argv[argc++] = "-c";
                argv[argc++] = (char *) details_script;
                argv[argc++] = "vsockctl-ls";
                argv[argc++] = (char *) dir;
                while (k < n && k - first < DETAILS_BATCH_NAMES &&
                       (k == first || bytes + strlen(names[k]) < DETAILS_BATCH_BYTES)) {
                        bytes += strlen(names[k]) + 1;
                        argv[argc++] = names[k++];
                }
                struct collect col = { .out = BUF_INIT(DETAILS_OUTPUT_MAX) };
                struct vsock_call call = VSOCK_CALL_INIT;
                call.deadline_ns = agent_reply_deadline();
                call.cancel_fd = cancel_fd();
                r = run_argv(addr, "ls", argv, argc, -1, -1, -1, &col, &call);
                if (r < 0)
                        snprintf(why, why_size, "%s%s%s", vsock_strerror(r), call.remote_error[0] ? ": " : "",
                                 call.remote_error);
                else if (r != 0)
                        snprintf(why, why_size, "stat in the guest exited with status %d", r);
                else if ((r = parse_details(buf_head(&col.out), buf_size(&col.out), d + first, k - first)) < 0)
                        snprintf(why, why_size, "unexpected output from stat in the guest");
                if (r > 0)
                        r = -EIO;
                buf_free(&col.out);
                first = k;
        }
        if (r < 0) {
                guest_details_free(d, n);
                return r;
        }
        *ret = d;
        return 0;
}

int guestfs_tar_out(const char *addr, const char *dir, int fd, struct vsock_call *call) {
        char *argv[] = { "tar", "-C", (char *) dir, "-cf", "-", "." };
        return run_argv(addr, "cp", argv, ARRAY_SIZE(argv), -1, fd, STDERR_FILENO, NULL, call);
}

int guestfs_tar_in(const char *addr, const char *dir, int fd, struct vsock_call *call) {
        char *argv[] = { "sh", "-c", (char *) tar_in_script, "vsockctl-cp", (char *) dir };
        return run_argv(addr, "cp", argv, ARRAY_SIZE(argv), fd, STDERR_FILENO, STDERR_FILENO, NULL, call);
}
