/* vsockctl stat, mkdir, rm, mv, chmod: file-system operations in the guest
 * (the "fs" extension, PROTOCOL.md 2.4). Each command sends its requests
 * one after another on one connection; against an agent without the
 * extension (the Go reference agent) it says so and exits 1. */
#include <errno.h>
#include <getopt.h>
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

/* ---- shared ------------------------------------------------------------------- */

static const char *guest_path(const char *arg) { return arg[0] == ':' ? arg + 1 : arg; }

/* One connection for a command's requests, dialled on first use. */
struct fs_session {
        const char *cmd;
        const char *addr;
        vsock_conn *c;
        bool unsupported;       /* said once */
        int status;
};

/* Run @req; on failure report it ("vsockctl: CMD: PATH: message") and
 * note the exit status. Returns the library's code. */
static int fs_run(struct fs_session *fs, const struct vsock_fs_request *req, struct vsock_fs_result *ret) {
        if (fs->unsupported)
                return VSOCK_ERR(VSOCK_E_UNSUPPORTED, ENOTSUP);
        if (!fs->c) {
                int r = agent_dial(fs->addr, VSOCK_PORT_EXEC, fs->cmd, &fs->c);
                if (r < 0) {
                        fs->status = CLI_EXIT_ERROR;
                        return r;
                }
        }
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = agent_reply_deadline();
        struct vsock_fs_result res = {};
        int r = vsock_fs(fs->c, req, &call, &res);
        if (r >= 0) {
                if (ret)
                        *ret = res;
                else
                        vsock_fs_result_clear(&res);
                return 0;
        }
        enum vsock_errkind k = vsock_err_kind(r);
        if (k == VSOCK_E_REMOTE && call.remote_error[0]) {
                /* The agent's words name the operation and the path. */
                cli_error("%s: %s", fs->cmd, call.remote_error);
                fs->status = MAX(fs->status, CLI_EXIT_FAILURE);
                return r;
        }
        if (k == VSOCK_E_UNSUPPORTED) {
                cli_error("%s: %s", fs->cmd, call.remote_error[0] ? call.remote_error : "agent does not support fs");
                fs->unsupported = true;
                fs->status = MAX(fs->status, CLI_EXIT_FAILURE);
                return r;
        }
        agent_report(r, &call, fs->cmd, fs->addr);
        fs->status = CLI_EXIT_ERROR;
        /* The connection is spent: the next request dials again. */
        (void) vsock_conn_close(fs->c);
        fs->c = NULL;
        return r;
}

static int fs_end(struct fs_session *fs) {
        (void) vsock_conn_close(fs->c);
        fs->c = NULL;
        return fs->status;
}

/* @tmpl for each of @paths[0..n) in turn, on as long as the agent serves:
 * the whole of a command that takes several paths. Returns the exit
 * status. With @show, each success's stat is shown. */
static int fs_each(const char *cmd, char **paths, int n, const struct vsock_fs_request *tmpl,
                   void (*show)(const char *path, const struct vsock_stat *st)) {
        struct fs_session fs = { .cmd = cmd };
        if (cli_exec_addr(&fs.addr) < 0)
                return CLI_EXIT_ERROR;
        for (int i = 0; i < n && fs.status != CLI_EXIT_ERROR && !fs.unsupported; i++) {
                struct vsock_fs_request req = *tmpl;
                req.path = guest_path(paths[i]);
                struct vsock_fs_result res;
                if (fs_run(&fs, &req, &res) < 0)
                        continue;
                if (show && res.has_stat)
                        show(req.path, &res.stat);
                vsock_fs_result_clear(&res);
        }
        return fs_end(&fs);
}

/* An octal mode of at most 07777. */
static int parse_mode(const char *s, int32_t *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 8);
        if (!*s || *end || errno || v > 07777 || s[0] == '-' || s[0] == '+')
                return -EINVAL;
        *ret = (int32_t) v;
        return 0;
}

/* ---- stat ------------------------------------------------------------------------ */

static void stat_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] stat [-L] :/PATH...\n"
              "\n"
              "Show the status of guest files, as stat(1) does: type, size, links, inode,\n"
              "device, mode, owner and group (ids and names from the guest's /etc/passwd and\n"
              "/etc/group), and the access, modification and change times. Symbolic links\n"
              "are shown themselves, with their target.\n"
              "\n"
              "  -L, --dereference  follow symbolic links\n"
              "  -h, --help         show this help\n"
              "\n"
              "Needs an agent with the \"fs\" extension. Exit status: 0 on success, 1 if a\n"
              "path could not be examined (or the agent lacks the extension), 255 for\n"
              "usage, connection and protocol errors.\n",
              f);
}

static const char *type_name(mode_t m) {
        switch (m & S_IFMT) {
        case S_IFREG: return "regular file";
        case S_IFDIR: return "directory";
        case S_IFLNK: return "symbolic link";
        case S_IFIFO: return "fifo";
        case S_IFSOCK: return "socket";
        case S_IFCHR: return "character special file";
        case S_IFBLK: return "block special file";
        default: return "unknown";
        }
}

static void print_time(const char *label, int64_t ns) {
        int64_t s = ns / NS_PER_SEC, rem = ns % NS_PER_SEC;
        if (rem < 0) {
                s--;
                rem += NS_PER_SEC;
        }
        time_t t = (time_t) s;
        struct tm tm;
        char when[64] = "?", zone[16] = "";
        if (localtime_r(&t, &tm)) {
                strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
                strftime(zone, sizeof zone, "%z", &tm);
        }
        printf("%s: %s.%09" PRId64 " %s\n", label, when, rem, zone);
}

static void print_stat(const char *path, const struct vsock_stat *st) {
        char mode[11];
        cli_mode_string(st->mode, false, mode);
        printf("  File: %s", path);
        if (st->target)
                printf(" -> %s", st->target);
        printf("\n  Size: %-15" PRId64 " Type: %s\n", st->size, type_name(st->mode));
        printf("Device: %" PRIu64 ",%" PRIu64 "\tInode: %-11" PRIu64 " Links: %" PRIu64, (uint64_t) major(st->dev),
               (uint64_t) minor(st->dev), st->ino, st->nlink);
        if (S_ISCHR(st->mode) || S_ISBLK(st->mode))
                printf("\tDevice type: %" PRIu64 ",%" PRIu64, (uint64_t) major(st->rdev), (uint64_t) minor(st->rdev));
        printf("\nAccess: (%04o/%s)  Uid: (%5" PRIu32 "/%8s)   Gid: (%5" PRIu32 "/%8s)\n",
               (unsigned) (st->mode & 07777), mode, st->uid, st->user ? st->user : "UNKNOWN", st->gid,
               st->group ? st->group : "UNKNOWN");
        print_time("Access", st->atime_ns);
        print_time("Modify", st->mtime_ns);
        print_time("Change", st->ctime_ns);
}

int cmd_stat(int argc, char **argv) {
        bool follow = false;
        const struct cli_flag flags[] = { { 'L', "dereference", &follow } };
        int r = cli_parse_flags("stat", argc, argv, flags, ARRAY_SIZE(flags), stat_usage);
        if (r >= 0)
                return r;
        if (optind >= argc)
                return cli_usage_error("stat", "missing PATH");
        struct vsock_fs_request req = VSOCK_FS_REQUEST_INIT(follow ? VSOCK_FS_STAT : VSOCK_FS_LSTAT, NULL);
        return fs_each("stat", argv + optind, argc - optind, &req, print_stat);
}

/* ---- mkdir ------------------------------------------------------------------------ */

static void mkdir_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] mkdir [-p] [-m MODE] :/PATH...\n"
              "\n"
              "Create guest directories.\n"
              "\n"
              "  -p, --parents    make missing parent directories (0755) as needed; an\n"
              "                   existing directory is no error\n"
              "  -m, --mode MODE  octal permission bits, exactly (no umask; default 0755)\n"
              "  -h, --help       show this help\n"
              "\n"
              "Needs an agent with the \"fs\" extension. Exit status: 0 on success, 1 if a\n"
              "directory could not be made, 255 for usage, connection and protocol errors.\n",
              f);
}

int cmd_mkdir(int argc, char **argv) {
        static const struct option options[] = {
                { "parents", no_argument, NULL, 'p' },
                { "mode", required_argument, NULL, 'm' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool parents = false;
        int32_t mode = -1;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "pm:h", options, NULL)) != -1) {
                switch (c) {
                case 'p': parents = true; break;
                case 'm':
                        if (parse_mode(optarg, &mode) < 0)
                                return cli_usage_error("mkdir", "invalid mode '%s' (octal, e.g. 0750)", optarg);
                        break;
                case 'h': mkdir_usage(stdout); return CLI_EXIT_OK;
                default: return cli_usage_hint("mkdir");
                }
        }
        if (optind >= argc)
                return cli_usage_error("mkdir", "missing PATH");
        struct vsock_fs_request req = VSOCK_FS_REQUEST_INIT(VSOCK_FS_MKDIR, NULL);
        req.mode = mode;
        req.parents = parents;
        return fs_each("mkdir", argv + optind, argc - optind, &req, NULL);
}

/* ---- rm ---------------------------------------------------------------------------- */

static void rm_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] rm [-r] [-f] :/PATH...\n"
              "\n"
              "Remove guest files, symbolic links (never what they point to) and empty\n"
              "directories.\n"
              "\n"
              "  -r, --recursive  remove directories and their contents; never follows a\n"
              "                   symbolic link and never enters another file system (a\n"
              "                   mount point inside the tree is left, and reported); the\n"
              "                   root directory is refused\n"
              "  -f, --force      a path that does not exist is no error\n"
              "  -h, --help       show this help\n"
              "\n"
              "Needs an agent with the \"fs\" extension. Exit status: 0 on success, 1 if a\n"
              "path could not be removed, 255 for usage, connection and protocol errors.\n",
              f);
}

int cmd_rm(int argc, char **argv) {
        bool recursive = false, force = false;
        const struct cli_flag flags[] = { { 'r', "recursive", &recursive }, { 'f', "force", &force } };
        int r = cli_parse_flags("rm", argc, argv, flags, ARRAY_SIZE(flags), rm_usage);
        if (r >= 0)
                return r;
        if (optind >= argc)
                return force ? CLI_EXIT_OK : cli_usage_error("rm", "missing PATH");
        struct vsock_fs_request req = VSOCK_FS_REQUEST_INIT(VSOCK_FS_REMOVE, NULL);
        req.recursive = recursive;
        req.force = force;
        return fs_each("rm", argv + optind, argc - optind, &req, NULL);
}

/* ---- mv ---------------------------------------------------------------------------- */

static void mv_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] mv :/SRC :/DST\n"
              "\n"
              "Rename a guest file or directory (rename(2): within one file system; an\n"
              "existing DST file is replaced, as is an empty DST directory).\n"
              "\n"
              "  -h, --help   show this help\n"
              "\n"
              "Needs an agent with the \"fs\" extension. Exit status: 0 on success, 1 if it\n"
              "could not be renamed, 255 for usage, connection and protocol errors.\n",
              f);
}

int cmd_mv(int argc, char **argv) {
        int r = cli_parse_flags("mv", argc, argv, NULL, 0, mv_usage);
        if (r >= 0)
                return r;
        if (argc - optind != 2)
                return cli_usage_error("mv", argc - optind < 2 ? "missing SRC or DST" : "too many arguments");
        struct vsock_fs_request req = VSOCK_FS_REQUEST_INIT(VSOCK_FS_RENAME, NULL);
        req.target = guest_path(argv[optind + 1]);
        return fs_each("mv", argv + optind, 1, &req, NULL);
}

/* ---- chmod -------------------------------------------------------------------------- */

static void chmod_usage(FILE *f) {
        fputs("Usage: vsockctl [-a ADDR] chmod MODE :/PATH...\n"
              "\n"
              "Set the permission bits of guest files: MODE is octal (e.g. 0644, 4755),\n"
              "setuid, setgid and sticky included. Symbolic links are followed.\n"
              "\n"
              "  -h, --help   show this help\n"
              "\n"
              "Needs an agent with the \"fs\" extension. Exit status: 0 on success, 1 if a\n"
              "mode could not be set, 255 for usage, connection and protocol errors.\n",
              f);
}

int cmd_chmod(int argc, char **argv) {
        int r = cli_parse_flags("chmod", argc, argv, NULL, 0, chmod_usage);
        if (r >= 0)
                return r;
        if (argc - optind < 2)
                return cli_usage_error("chmod", argc - optind < 1 ? "missing MODE" : "missing PATH");
        int32_t mode;
        if (parse_mode(argv[optind], &mode) < 0)
                return cli_usage_error("chmod", "invalid mode '%s' (octal, e.g. 0644)", argv[optind]);
        struct vsock_fs_request req = VSOCK_FS_REQUEST_INIT(VSOCK_FS_CHMOD, NULL);
        req.mode = mode;
        return fs_each("chmod", argv + optind + 1, argc - optind - 1, &req, NULL);
}
