/* A FUSE file system that never answers, on purpose: the stalled network
 * share (NFS, 9p, virtio-fs) of the hostile suite, in a test process.
 *
 *   fuse-stall MOUNTPOINT
 *
 * mounts itself on MOUNTPOINT (as root: no fusermount needed), prints
 * "ready" on stdout and serves a root directory that holds:
 *   ok           a regular file, "fuse ok\n"
 *   okdir/       an empty directory
 *   stall...     any other name beginning with "stall" in the root: its
 *                lookup never answers
 *   gstall       its getattr never answers (lookup does, with no cache)
 *   ostall       its open never answers
 *   rstall       its read never answers
 *   dstall/      its opendir never answers
 *   bigstall     a 1 GiB file whose reads never answer
 * Nothing else exists. Requests that stall are kept. When stdin reaches
 * EOF (the test closes it, or dies), every kept request is answered with
 * EIO and it exits (the test detaches the mount): nothing stays stuck. It
 * also dies with its parent. */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

enum { INO_ROOT = 1, INO_OK, INO_OKDIR, INO_GSTALL, INO_OSTALL, INO_RSTALL, INO_DSTALL, INO_BIGSTALL };

static const struct {
        const char *name;
        fuse_ino_t ino;
        mode_t mode;
        off_t size;
} entries[] = {
        { "ok", INO_OK, S_IFREG | 0755, 8 },
        { "okdir", INO_OKDIR, S_IFDIR | 0755, 0 },
        { "gstall", INO_GSTALL, S_IFREG | 0644, 1 },
        { "ostall", INO_OSTALL, S_IFREG | 0755, 1 },
        { "rstall", INO_RSTALL, S_IFREG | 0644, 4096 },
        { "dstall", INO_DSTALL, S_IFDIR | 0755, 0 },
        { "bigstall", INO_BIGSTALL, S_IFREG | 0644, 1L << 30 },
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static fuse_req_t kept[4096];
static size_t n_kept;
static bool released;
static struct fuse_session *session;

/* Keep @req unanswered, or refuse it once released. */
static void stall(fuse_req_t req) {
        pthread_mutex_lock(&lock);
        bool now = released || n_kept == sizeof kept / sizeof *kept;
        if (!now)
                kept[n_kept++] = req;
        pthread_mutex_unlock(&lock);
        if (now)
                fuse_reply_err(req, EIO);
}

static void fill_attr(fuse_ino_t ino, struct stat *st) {
        memset(st, 0, sizeof *st);
        st->st_ino = ino;
        st->st_nlink = 1;
        if (ino == INO_ROOT) {
                st->st_mode = S_IFDIR | 0755;
                return;
        }
        for (size_t i = 0; i < sizeof entries / sizeof *entries; i++)
                if (entries[i].ino == ino) {
                        st->st_mode = entries[i].mode;
                        st->st_size = entries[i].size;
                }
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
        if (parent == INO_ROOT)
                for (size_t i = 0; i < sizeof entries / sizeof *entries; i++)
                        if (strcmp(name, entries[i].name) == 0) {
                                struct fuse_entry_param e = { .ino = entries[i].ino };
                                fill_attr(e.ino, &e.attr);
                                /* No caching: every stat asks again. */
                                e.attr_timeout = entries[i].ino == INO_GSTALL ? 0 : 1;
                                e.entry_timeout = 1;
                                fuse_reply_entry(req, &e);
                                return;
                        }
        if (parent == INO_ROOT && strncmp(name, "stall", 5) == 0) {
                stall(req);
                return;
        }
        fuse_reply_err(req, ENOENT);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        (void) fi;
        if (ino == INO_GSTALL) {
                stall(req);
                return;
        }
        struct stat st;
        fill_attr(ino, &st);
        fuse_reply_attr(req, &st, 1);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        if (ino == INO_OSTALL) {
                stall(req);
                return;
        }
        fi->direct_io = 1; /* reads always reach us */
        fuse_reply_open(req, fi);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        (void) fi;
        if (ino == INO_RSTALL || ino == INO_BIGSTALL) {
                stall(req);
                return;
        }
        static const char content[] = "fuse ok\n";
        size_t len = sizeof content - 1;
        if (ino != INO_OK || (size_t) off >= len)
                fuse_reply_buf(req, NULL, 0);
        else
                fuse_reply_buf(req, content + off, size < len - (size_t) off ? size : len - (size_t) off);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        if (ino == INO_DSTALL) {
                stall(req);
                return;
        }
        fuse_reply_open(req, fi);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        (void) fi;
        char buf[4096];
        size_t used = 0;
        /* Offsets: 1 ".", 2 "..", then the entries of the root. */
        size_t n = ino == INO_ROOT ? 2 + sizeof entries / sizeof *entries : 2;
        for (size_t i = (size_t) off; i < n; i++) {
                struct stat st = { 0 };
                const char *name = i == 0 ? "." : i == 1 ? ".." : entries[i - 2].name;
                fill_attr(i < 2 ? ino : entries[i - 2].ino, &st);
                size_t want = fuse_add_direntry(req, buf + used, sizeof buf - used, name, &st, (off_t) i + 1);
                if (used + want > sizeof buf || used + want > size)
                        break;
                used += want;
        }
        fuse_reply_buf(req, buf, used);
}

static const struct fuse_lowlevel_ops ops = {
        .lookup = fs_lookup,
        .getattr = fs_getattr,
        .open = fs_open,
        .read = fs_read,
        .opendir = fs_opendir,
        .readdir = fs_readdir,
};

/* stdin at EOF: answer everything kept, refuse the rest, and leave. */
static void *release_main(void *p) {
        (void) p;
        char c;
        while (read(0, &c, 1) > 0)
                ;
        pthread_mutex_lock(&lock);
        released = true;
        size_t n = n_kept;
        n_kept = 0;
        pthread_mutex_unlock(&lock);
        for (size_t i = 0; i < n; i++)
                fuse_reply_err(kept[i], EIO);
        /* Leave from here once the answers are out (the session loop
         * waits for a request that may never come); the connection goes
         * with us, and the test detaches the mount. */
        _exit(0);
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: fuse-stall MOUNTPOINT\n");
                return 2;
        }
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
                return 1; /* the parent is already gone */
        char *fargv[] = { argv[0], NULL };
        struct fuse_args args = FUSE_ARGS_INIT(1, fargv);
        session = fuse_session_new(&args, &ops, sizeof ops, NULL);
        if (!session) {
                fprintf(stderr, "fuse-stall: cannot create a session\n");
                return 1;
        }
        if (fuse_session_mount(session, argv[1]) != 0) {
                fprintf(stderr, "fuse-stall: cannot mount on %s\n", argv[1]);
                return 1;
        }
        pthread_t t;
        if (pthread_create(&t, NULL, release_main, NULL) != 0)
                return 1;
        printf("ready\n");
        fflush(stdout);
        int r = fuse_session_loop(session);
        fuse_session_unmount(session);
        return r < 0 ? 1 : 0;
}
