/* Trees to tar streams and back (src/lib/tar_fs.h), on a scratch directory:
 *   - round trips of a tree with every kind of entry, through our walker
 *     and our extractor (openat2 and the O_NOFOLLOW walk), in random
 *     buffer and feed sizes;
 *   - interop with GNU tar both ways (--format=pax, gnu, ustar);
 *   - hostile archives: symlink-then-write-through, a symlink already in
 *     the root, hard links through symlinks, replacement of symlinks,
 *     truncation (nothing half-written stays), setuid bits, owners;
 *   - the walker's edges: a single file, a symlink root, a file that
 *     shrinks while it is read, depth and name limits, other file systems. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/tar.h"
#include "lib/tar_fs.h"

extern char **environ;

static uint64_t rng = 0x2545f4914f6cdd1dULL;
static uint64_t rnd(uint64_t n) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return n ? rng % n : rng;
}

static char base[256];
static int base_fd = -1;

/* ---- scratch directories ------------------------------------------------------------------- */

/* Remove everything below @dirfd, by fd (names may exceed PATH_MAX). */
static void rm_below(int dirfd) {
        (void) fchmod(dirfd, 0700);
        int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                if (unlinkat(dirfd, e->d_name, 0) == 0)
                        continue;
                int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub >= 0) {
                        rm_below(sub);
                        close(sub);
                }
                (void) unlinkat(dirfd, e->d_name, AT_REMOVEDIR);
        }
        closedir(d);
}

static int setup(void **state) {
        const char *tmp = getenv("TMPDIR");
        snprintf(base, sizeof base, "%s/test-tar-fs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        assert_non_null(mkdtemp(base));
        base_fd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
        assert_true(base_fd >= 0);
        return 0;
}

static int teardown(void **state) {
        int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
                rm_below(fd);
                close(fd);
        }
        (void) rmdir(base);
        close(base_fd);
        return 0;
}

/* A fresh directory under the scratch base; returns an O_PATH fd. */
static int mkscratch(const char *name) {
        assert_int_equal(mkdirat(base_fd, name, 0755), 0);
        int fd = openat(base_fd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
}

static void write_file(int dirfd, const char *name, const void *data, size_t n, mode_t mode) {
        int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, n), (ssize_t) n);
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

static void set_mtime(int dirfd, const char *name, time_t sec, long nsec) {
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { sec, nsec } };
        assert_int_equal(utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static char *read_all(int dirfd, const char *name, size_t *ret_len) {
        int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return NULL;
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        char *d = malloc((size_t) st.st_size + 1);
        assert_non_null(d);
        size_t k = 0;
        ssize_t n;
        while ((n = read(fd, d + k, (size_t) st.st_size - k)) > 0)
                k += (size_t) n;
        d[k] = '\0';
        close(fd);
        *ret_len = k;
        return d;
}

/* ---- archives ---------------------------------------------------------------------------------- */

struct archive {
        uint8_t *data;
        size_t len, cap;
};

static void put(struct archive *a, const void *p, size_t n) {
        if (a->len + n > a->cap) {
                a->cap = (a->len + n) * 2 + 65536;
                a->data = realloc(a->data, a->cap);
                assert_non_null(a->data);
        }
        memcpy(a->data + a->len, p, n);
        a->len += n;
}

static const char *owner_name(void *ctx, bool group, uint32_t id) {
        (*(int *) ctx)++;
        return id == 0 ? (group ? "rootgrp" : "root") : NULL;
}

/* Archive @name of @dirfd as @arc, in reads of random size. */
static int walk(int dirfd, const char *name, const char *arc, struct archive *a, struct tar_walk_stats *st,
                char *msg, size_t msg_size) {
        struct tar_walk *t;
        int calls = 0;
        int r = tar_walk_new(dirfd, name, arc, owner_name, &calls, &t);
        if (r < 0)
                return r;
        uint8_t buf[70000];
        for (;;) {
                size_t want = 1 + rnd(rnd(2) ? 600 : sizeof buf);
                ssize_t n = tar_walk_read(t, buf, want);
                if (n < 0) {
                        snprintf(msg, msg_size, "%s", tar_walk_error(t));
                        tar_walk_free(t);
                        return (int) n;
                }
                put(a, buf, (size_t) n);
                if ((size_t) n < want) {
                        /* Short only at the end, and then done. */
                        assert_int_equal(tar_walk_read(t, buf, sizeof buf), 0);
                        break;
                }
        }
        if (st)
                tar_walk_stats(t, st);
        tar_walk_free(t);
        return 0;
}

/* Extract @a beneath @root_fd in feeds of random size. */
static int extract(const struct archive *a, int root_fd, unsigned flags, struct tar_extract_stats *st, char *msg,
                   size_t msg_size) {
        struct tar_extract *x;
        int rfd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(rfd >= 0);
        assert_int_equal(tar_extract_new(rfd, flags, &x), 0);
        int r = 0;
        for (size_t off = 0; off < a->len && r == 0;) {
                size_t n = 1 + rnd(rnd(2) ? 700 : 100000);
                if (n > a->len - off)
                        n = a->len - off;
                r = tar_extract_write(x, a->data + off, n);
                off += n;
        }
        int f = tar_extract_finish(x);
        if (r == 0)
                r = f;
        if (r < 0 && msg)
                snprintf(msg, msg_size, "%s", tar_extract_error(x));
        if (st)
                tar_extract_stats(x, st);
        tar_extract_free(x);
        close(rfd);
        return r;
}

static int run(char *const argv[], const char *cwd) {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        if (cwd)
                posix_spawn_file_actions_addchdir_np(&fa, cwd);
        pid_t pid;
        int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
                return -r;
        int st;
        while (waitpid(pid, &st, 0) < 0)
                assert_int_equal(errno, EINTR);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void save(const struct archive *a, const char *path) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, a->data, a->len), (ssize_t) a->len);
        close(fd);
}

static void load(struct archive *a, const char *path) {
        size_t n;
        char *d = read_all(AT_FDCWD, path, &n);
        assert_non_null(d);
        a->data = (uint8_t *) d;
        a->len = a->cap = n;
}

/* ---- tree comparison ----------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Sorted names in @dirfd, without "." and ".."; FIFOs and sockets are
 * left out when @skip_special. */
static size_t list(int dirfd, char ***ret, bool skip_special) {
        int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(fd >= 0);
        DIR *d = fdopendir(fd);
        assert_non_null(d);
        char **v = NULL;
        size_t n = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                struct stat st;
                assert_int_equal(fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW), 0);
                if (skip_special && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
                        continue;
                v = realloc(v, (n + 1) * sizeof *v);
                assert_non_null(v);
                v[n++] = strdup(e->d_name);
        }
        closedir(d);
        if (n > 1)
                qsort(v, n, sizeof *v, cmp_str);
        *ret = v;
        return n;
}

struct inomap {
        ino_t a[64], b[64];
        size_t n;
};

/* @b is a copy of @a: same names, types, permission bits, contents, link
 * targets, mtimes (seconds, or nanoseconds when @ns), hard link groups. */
static void compare(int a, int b, const char *where, bool ns, struct inomap *links) {
        char **na, **nb;
        size_t ca = list(a, &na, true), cb = list(b, &nb, false);
        if (ca != cb)
                fail_msg("%s: %zu entries, copy has %zu", where, ca, cb);
        for (size_t i = 0; i < ca; i++) {
                char path[4200];
                snprintf(path, sizeof path, "%s/%s", where, na[i]);
                if (strcmp(na[i], nb[i]) != 0)
                        fail_msg("%s: copy has %s", path, nb[i]);
                struct stat sa, sb;
                assert_int_equal(fstatat(a, na[i], &sa, AT_SYMLINK_NOFOLLOW), 0);
                assert_int_equal(fstatat(b, nb[i], &sb, AT_SYMLINK_NOFOLLOW), 0);
                if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT))
                        fail_msg("%s: type %o, copy %o", path, sa.st_mode & S_IFMT, sb.st_mode & S_IFMT);
                if (!S_ISLNK(sa.st_mode) && (sa.st_mode & 07777) != (sb.st_mode & 07777))
                        fail_msg("%s: mode %o, copy %o", path, sa.st_mode & 07777, sb.st_mode & 07777);
                if (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec || (ns && sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec))
                        fail_msg("%s: mtime %lld.%09ld, copy %lld.%09ld", path, (long long) sa.st_mtim.tv_sec,
                                 sa.st_mtim.tv_nsec, (long long) sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
                if (S_ISREG(sa.st_mode)) {
                        size_t la, lb;
                        char *da = read_all(a, na[i], &la), *db = read_all(b, nb[i], &lb);
                        assert_non_null(da);
                        assert_non_null(db);
                        if (la != lb || memcmp(da, db, la) != 0)
                                fail_msg("%s: content differs (%zu vs %zu bytes)", path, la, lb);
                        free(da);
                        free(db);
                        if (sa.st_nlink > 1) {
                                /* The same group of names on both sides. */
                                size_t k = 0;
                                while (k < links->n && links->a[k] != sa.st_ino)
                                        k++;
                                if (k == links->n) {
                                        assert_true(links->n < 64);
                                        links->a[k] = sa.st_ino;
                                        links->b[k] = sb.st_ino;
                                        links->n++;
                                } else if (links->b[k] != sb.st_ino)
                                        fail_msg("%s: hard link not kept", path);
                        }
                } else if (S_ISLNK(sa.st_mode)) {
                        char ta[4200], tb[4200];
                        ssize_t la = readlinkat(a, na[i], ta, sizeof ta), lb = readlinkat(b, nb[i], tb, sizeof tb);
                        assert_true(la > 0 && la == lb);
                        assert_memory_equal(ta, tb, (size_t) la);
                } else if (S_ISDIR(sa.st_mode)) {
                        int sub_a = openat(a, na[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        int sub_b = openat(b, nb[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        assert_true(sub_a >= 0 && sub_b >= 0);
                        compare(sub_a, sub_b, path, ns, links);
                        close(sub_a);
                        close(sub_b);
                }
                free(na[i]);
                free(nb[i]);
        }
        free(na);
        free(nb);
}

static void compare_trees(int a, const char *name_a, int b, const char *name_b, bool ns) {
        int fa = openat(a, name_a, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int fb = openat(b, name_b, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        assert_true(fa >= 0 && fb >= 0);
        struct inomap links = { 0 };
        compare(fa, fb, name_a, ns, &links);
        struct stat sa, sb;
        assert_int_equal(fstat(fa, &sa), 0);
        assert_int_equal(fstat(fb, &sb), 0);
        assert_int_equal(sa.st_mode & 07777, sb.st_mode & 07777);
        close(fa);
        close(fb);
}

/* A tree with every kind of entry under @dirfd/src; returns how many
 * entries an archive of it holds (the FIFO and the socket are not). */
static int make_tree(int dirfd, const char *scratch, bool long_names, bool specials) {
        static uint8_t big[3 << 20];
        for (size_t i = 0; i < sizeof big; i++)
                big[i] = (uint8_t) rnd(256);
        assert_int_equal(mkdirat(dirfd, "src", 0755), 0);
        int s = openat(dirfd, "src", O_PATH | O_DIRECTORY | O_CLOEXEC);
        int n = 1;
        write_file(s, "empty", "", 0, 0600), n++;
        write_file(s, "small.txt", "hello\n", 6, 0644), n++;
        write_file(s, "big.bin", big, sizeof big, 0640), n++;
        write_file(s, "setuid", "#!/bin/sh\n", 10, 04755), n++;
        write_file(s, "group-x", "g", 1, 02711), n++;
        assert_int_equal(linkat(s, "small.txt", s, "hardlink", 0), 0), n++;
        assert_int_equal(symlinkat("small.txt", s, "rel-link"), 0), n++;
        assert_int_equal(symlinkat("/nonexistent/target", s, "dangling"), 0), n++;
        assert_int_equal(mkdirat(s, "sub", 0750), 0), n++;
        assert_int_equal(mkdirat(s, "sub/deeper", 0700), 0), n++;
        write_file(s, "sub/deeper/f", "deep", 4, 0444), n++;
        assert_int_equal(mkdirat(s, "sub/empty-dir", 01777), 0), n++;
        assert_int_equal(symlinkat("../small.txt", s, "sub/up-link"), 0), n++;
        assert_int_equal(linkat(s, "big.bin", s, "sub/big-again", 0), 0), n++;
        if (long_names) {
                char name[256], path[1024];
                memset(name, 'n', 200);
                name[200] = '\0';
                write_file(s, name, "long", 4, 0644), n++;
                snprintf(path, sizeof path, "sub/%s", name);
                assert_int_equal(mkdirat(s, path, 0755), 0), n++;
                snprintf(path, sizeof path, "sub/%s/%s", name, name);
                write_file(s, path, "longer", 6, 0644), n++;
                char target[300];
                memset(target, 't', 250);
                target[250] = '\0';
                assert_int_equal(symlinkat(target, s, "long-target"), 0), n++;
                write_file(s, "\xc3\xa9t\xc3\xa9 <&> \"q\" \\", "u", 1, 0644), n++;
        }
        if (specials) {
                assert_int_equal(mkfifoat(s, "fifo", 0600), 0);
                int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                char sp[600];
                int k = snprintf(sp, sizeof sp, "%s/%s/src/sock", base, scratch);
                assert_true((size_t) k < sizeof sa.sun_path);
                memcpy(sa.sun_path, sp, (size_t) k + 1);
                assert_int_equal(bind(sock, (struct sockaddr *) &sa, sizeof sa), 0);
                close(sock);
        }
        /* mtimes with nanoseconds, directories last. */
        const char *files[] = { "empty", "small.txt", "big.bin", "setuid", "rel-link", "dangling", "sub/deeper/f",
                                "sub/up-link" };
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
                set_mtime(s, files[i], 1600000000 + (time_t) i, 123456789 + (long) i);
        set_mtime(s, "sub/deeper", 1500000000, 1);
        set_mtime(s, "sub/empty-dir", 1500000001, 999999999);
        set_mtime(s, "sub", 1500000002, 5);
        set_mtime(s, ".", 1400000000, 42);
        close(s);
        return n;
}

/* ---- round trips ------------------------------------------------------------------------------------ */

static void roundtrip(unsigned flags) {
        const char *name = flags & TAR_X_NO_OPENAT2 ? "t-walk" : "t";
        int t = mkscratch(name);
        int n = make_tree(t, name, true, !(flags & TAR_X_NO_OPENAT2));
        struct archive a = { 0 };
        struct tar_walk_stats ws;
        char msg[512] = "";
        int r = walk(t, "src", "src", &a, &ws, msg, sizeof msg);
        if (r < 0)
                fail_msg("walk: %d %s", r, msg);
        assert_int_equal(ws.entries, n);
        assert_int_equal(ws.skipped, flags & TAR_X_NO_OPENAT2 ? 0 : 2);
        assert_int_equal(ws.other_fs, 0);
        assert_int_equal(ws.changed, 0);

        int dst = mkscratch(flags & TAR_X_NO_OPENAT2 ? "dst-walk" : "dst");
        struct tar_extract_stats xs;
        r = extract(&a, dst, flags | TAR_X_OWNER, &xs, msg, sizeof msg);
        if (r < 0)
                fail_msg("extract: %d %s", r, msg);
        assert_int_equal(xs.entries, n);
        assert_int_equal(xs.skipped, 0);
        compare_trees(t, "src", dst, "src", true);
        free(a.data);

        /* The contents only (arcname "."), into an existing directory. */
        a = (struct archive) { 0 };
        assert_int_equal(walk(t, "src", ".", &a, NULL, msg, sizeof msg), 0);
        /* The root's own attributes stay the caller's: match them. */
        assert_int_equal(mkdirat(dst, "flat", 0700), 0);
        assert_int_equal(fchmodat(dst, "flat", 0755, 0), 0);
        int flat = openat(dst, "flat", O_PATH | O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(extract(&a, flat, flags | TAR_X_OWNER, &xs, msg, sizeof msg), 0);
        assert_int_equal(xs.entries, n);
        compare_trees(t, "src", dst, "flat", true);
        close(flat);
        free(a.data);
        close(dst);
        close(t);
}

static void test_roundtrip_openat2(void **state) {
        roundtrip(0);
}

static void test_roundtrip_nofollow_walk(void **state) {
        roundtrip(TAR_X_NO_OPENAT2);
}

static void test_owner_name_cache(void **state) {
        int t = mkscratch("names");
        for (int i = 0; i < 20; i++) {
                char n[16];
                snprintf(n, sizeof n, "f%d", i);
                write_file(t, n, "x", 1, 0644);
        }
        struct tar_walk *w;
        int calls = 0;
        assert_int_equal(tar_walk_new(base_fd, "names", "names", owner_name, &calls, &w), 0);
        uint8_t buf[65536];
        while (tar_walk_read(w, buf, sizeof buf) > 0)
                ;
        /* One user and one group lookup for 21 entries of one owner. */
        assert_int_equal(calls, 2);
        tar_walk_free(w);
        close(t);
}

/* ---- GNU tar ------------------------------------------------------------------------------------------ */

static void test_gnu_tar_extracts_ours(void **state) {
        int t = mkscratch("g1");
        make_tree(t, "g1", true, true);
        struct archive a = { 0 };
        char msg[512], path[512], dir[512];
        assert_int_equal(walk(t, "src", "src", &a, NULL, msg, sizeof msg), 0);
        snprintf(path, sizeof path, "%s/g1/ours.tar", base);
        save(&a, path);
        snprintf(dir, sizeof dir, "%s/g1/out", base);
        assert_int_equal(mkdir(dir, 0755), 0);
        char *argv[] = { "tar", "-x", "-p", "-f", path, "-C", dir, NULL };
        assert_int_equal(run(argv, NULL), 0);
        compare_trees(t, "src", t, "out/src", true);
        /* And GNU tar's own listing agrees on the names. */
        char *tv[] = { "tar", "-t", "-f", path, NULL };
        assert_int_equal(run(tv, NULL), 0);
        free(a.data);
        close(t);
}

static void gnu_tar_format(const char *format, bool long_names, bool ns) {
        char name[64], path[512], cwd[512];
        snprintf(name, sizeof name, "g-%s", format);
        int t = mkscratch(name);
        make_tree(t, name, long_names, false);
        snprintf(path, sizeof path, "%s/%s/theirs.tar", base, name);
        snprintf(cwd, sizeof cwd, "%s/%s", base, name);
        char fmt[64];
        snprintf(fmt, sizeof fmt, "--format=%s", format);
        char *argv[] = { "tar", "-c", fmt, "-f", path, "src", NULL };
        assert_int_equal(run(argv, cwd), 0);
        struct archive a = { 0 };
        load(&a, path);
        assert_int_equal(mkdirat(t, "out", 0755), 0);
        int out = openat(t, "out", O_PATH | O_DIRECTORY | O_CLOEXEC);
        char msg[512] = "";
        struct tar_extract_stats xs;
        int r = extract(&a, out, TAR_X_OWNER, &xs, msg, sizeof msg);
        if (r < 0)
                fail_msg("%s: %d %s", format, r, msg);
        compare_trees(t, "src", out, "src", ns);
        free(a.data);
        close(out);
        close(t);
}

static void test_ours_extracts_gnu_pax(void **state) {
        gnu_tar_format("pax", true, true);
}

static void test_ours_extracts_gnu_gnu(void **state) {
        gnu_tar_format("gnu", true, false);
}

static void test_ours_extracts_gnu_ustar(void **state) {
        gnu_tar_format("ustar", false, false);
}

/* ---- hostile archives ------------------------------------------------------------------------------------ */

/* An archive from a list of entries, file contents from @contents. */
static struct archive build(const struct tar_entry *e, size_t n, const char *const *contents) {
        struct tar_writer *w;
        struct archive a = { 0 };
        uint8_t buf[4096];
        size_t k;
        assert_int_equal(tar_writer_new(&w), 0);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(tar_writer_add(w, &e[i]), 0);
                while ((k = tar_writer_read(w, buf, sizeof buf)) > 0)
                        put(&a, buf, k);
                if (e[i].type == TAR_FILE && e[i].size) {
                        put(&a, contents[i], e[i].size);
                        assert_int_equal(tar_writer_content_done(w, e[i].size), 0);
                        while ((k = tar_writer_read(w, buf, sizeof buf)) > 0)
                                put(&a, buf, k);
                }
        }
        assert_int_equal(tar_writer_finish(w), 0);
        while ((k = tar_writer_read(w, buf, sizeof buf)) > 0)
                put(&a, buf, k);
        tar_writer_free(w);
        return a;
}

static bool exists(int dirfd, const char *name) {
        struct stat st;
        return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* No temporary file left anywhere in @dirfd (one level). */
static void no_temporaries(int dirfd) {
        char **v;
        size_t n = list(dirfd, &v, false);
        for (size_t i = 0; i < n; i++) {
                if (strncmp(v[i], ".tarx.", 6) == 0)
                        fail_msg("temporary %s left behind", v[i]);
                free(v[i]);
        }
        free(v);
}

static void hostile(unsigned flags) {
        char outside[600], msg[600];
        const char *tag = flags & TAR_X_NO_OPENAT2 ? "h-walk" : "h";
        int h = mkscratch(tag);
        assert_int_equal(mkdirat(h, "outside", 0755), 0);
        assert_int_equal(mkdirat(h, "root", 0755), 0);
        int out = openat(h, "outside", O_PATH | O_DIRECTORY | O_CLOEXEC);
        int root = openat(h, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
        snprintf(outside, sizeof outside, "%s/%s/outside", base, tag);
        write_file(out, "secret", "secret", 6, 0600);

        /* A symlink, then a file through it. */
        struct tar_entry e1[] = {
                { .type = TAR_SYMLINK, .name = "a", .link = outside },
                { .type = TAR_FILE, .name = "a/pwn", .size = 3, .mode = 0644 },
        };
        struct archive a = build(e1, 2, (const char *[]) { NULL, "pwn" });
        assert_int_equal(extract(&a, root, flags, NULL, msg, sizeof msg), -ELOOP);
        assert_non_null(strstr(msg, "a symlink is in the way"));
        assert_false(exists(out, "pwn"));
        free(a.data);

        /* The same with a relative symlink climbing out, and a directory
         * entry through it. */
        struct tar_entry e2[] = {
                { .type = TAR_SYMLINK, .name = "up", .link = "../outside" },
                { .type = TAR_DIR, .name = "up/newdir", .mode = 0755 },
        };
        a = build(e2, 2, NULL);
        assert_int_equal(extract(&a, root, flags, NULL, msg, sizeof msg), -ELOOP);
        assert_false(exists(out, "newdir"));
        free(a.data);

        /* A symlink already in the root, deep in the name. */
        assert_int_equal(symlinkat(outside, root, "pre"), 0);
        struct tar_entry e3[] = { { .type = TAR_FILE, .name = "pre/x/y", .size = 1, .mode = 0644 } };
        a = build(e3, 1, (const char *[]) { "y" });
        assert_int_equal(extract(&a, root, flags, NULL, msg, sizeof msg), -ELOOP);
        assert_false(exists(out, "x"));
        free(a.data);

        /* A hard link to a file reached through a symlink. */
        struct tar_entry e4[] = { { .type = TAR_HARDLINK, .name = "stolen", .link = "pre/secret" } };
        a = build(e4, 1, NULL);
        assert_int_equal(extract(&a, root, flags, NULL, msg, sizeof msg), -ELOOP);
        assert_false(exists(root, "stolen"));
        free(a.data);

        /* An entry named like an existing symlink replaces the symlink;
         * the file it pointed to is untouched. */
        struct tar_entry e5[] = { { .type = TAR_FILE, .name = "pre", .size = 3, .mode = 0644 } };
        a = build(e5, 1, (const char *[]) { "new" });
        assert_int_equal(extract(&a, root, flags, NULL, msg, sizeof msg), 0);
        struct stat st;
        assert_int_equal(fstatat(root, "pre", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISREG(st.st_mode));
        size_t len;
        char *s = read_all(out, "secret", &len);
        assert_string_equal(s, "secret");
        free(s);
        free(a.data);

        /* A file over a directory, a directory over a file. */
        assert_int_equal(mkdirat(root, "isdir", 0755), 0);
        struct tar_entry e6[] = { { .type = TAR_FILE, .name = "isdir", .size = 0, .mode = 0644 } };
        a = build(e6, 1, NULL);
        assert_int_equal(extract(&a, root, flags, NULL, msg, sizeof msg), -EISDIR);
        free(a.data);
        struct tar_entry e7[] = { { .type = TAR_DIR, .name = "pre", .mode = 0755 } };
        a = build(e7, 1, NULL);
        assert_int_equal(extract(&a, root, flags, NULL, msg, sizeof msg), -EEXIST);
        assert_non_null(strstr(msg, "exists and is not a directory"));
        free(a.data);

        /* Cut off in the middle of a file: no half file, no temporary. */
        static char content[100000];
        memset(content, 'c', sizeof content);
        struct tar_entry e8[] = {
                { .type = TAR_DIR, .name = "cut", .mode = 0755 },
                { .type = TAR_FILE, .name = "cut/whole", .size = 10, .mode = 0644 },
                { .type = TAR_FILE, .name = "cut/half", .size = sizeof content, .mode = 0644 },
        };
        a = build(e8, 3, (const char *[]) { NULL, content, content });
        a.len = 3 * 512 + 512 + 50000;
        assert_int_equal(extract(&a, root, flags, NULL, msg, sizeof msg), -EBADMSG);
        assert_non_null(strstr(msg, "truncated"));
        int cut = openat(root, "cut", O_PATH | O_DIRECTORY | O_CLOEXEC);
        assert_true(cut >= 0);
        assert_true(exists(cut, "whole"));
        assert_false(exists(cut, "half"));
        no_temporaries(cut);
        close(cut);
        free(a.data);

        /* Devices and FIFOs are skipped and counted; so are unknown types. */
        struct tar_entry e9[] = {
                { .type = TAR_CHAR, .name = "null", .devmajor = 1, .devminor = 3, .mode = 0666 },
                { .type = TAR_BLOCK_DEV, .name = "sda", .devmajor = 8, .mode = 0660 },
                { .type = TAR_FIFO, .name = "fifo", .mode = 0600 },
                { .type = TAR_FILE, .name = "plain", .size = 1, .mode = 0644 },
        };
        a = build(e9, 4, (const char *[]) { NULL, NULL, NULL, "p" });
        struct tar_extract_stats xs;
        assert_int_equal(extract(&a, root, flags, &xs, msg, sizeof msg), 0);
        assert_int_equal(xs.skipped, 3);
        assert_int_equal(xs.entries, 1);
        assert_false(exists(root, "null") || exists(root, "sda") || exists(root, "fifo"));
        free(a.data);

        /* Hostile names never reach the file system. */
        struct archive bad = { 0 };
        uint8_t hdr[512] = { 0 };
        struct tar_entry ok = { .type = TAR_FILE, .name = "abcevil", .mode = 0644 };
        bad = build(&ok, 1, NULL);
        memcpy(bad.data, "../", 3); /* rename it to ../evil, then fix the checksum */
        memcpy(hdr, bad.data, 512);
        memset(hdr + 148, ' ', 8);
        unsigned sum = 0;
        for (int i = 0; i < 512; i++)
                sum += hdr[i];
        snprintf((char *) bad.data + 148, 8, "%06o", sum);
        assert_int_equal(extract(&bad, root, flags, NULL, msg, sizeof msg), -EINVAL);
        assert_false(exists(h, "evil"));
        free(bad.data);

        no_temporaries(root);
        close(out);
        close(root);
        close(h);
}

static void test_hostile_openat2(void **state) {
        hostile(0);
}

static void test_hostile_nofollow_walk(void **state) {
        hostile(TAR_X_NO_OPENAT2);
}

static void test_modes_and_owners(void **state) {
        int m = mkscratch("modes");
        struct tar_entry e[] = {
                { .type = TAR_DIR, .name = "ro", .mode = 0555, .mtime = 1000, .mtime_nsec = 7 },
                { .type = TAR_FILE, .name = "ro/f", .size = 1, .mode = 0444, .mtime = 2000 },
                { .type = TAR_DIR, .name = "ro/sub", .mode = 02755, .mtime = 3000 },
                { .type = TAR_FILE, .name = "suid", .size = 1, .mode = 06755, .uid = 1234, .gid = 5678 },
                { .type = TAR_SYMLINK, .name = "ln", .link = "suid", .uid = 1234, .gid = 5678, .mtime = 42 },
        };
        struct archive a = build(e, 5, (const char *[]) { NULL, "f", NULL, "s", NULL });
        char msg[512];
        assert_int_equal(mkdirat(m, "plain", 0755), 0);
        int plain = openat(m, "plain", O_PATH | O_DIRECTORY | O_CLOEXEC);
        /* A read-only directory still gets its contents, then its mode. */
        int r = extract(&a, plain, 0, NULL, msg, sizeof msg);
        if (r < 0)
                fail_msg("%s", msg);
        struct stat st;
        assert_int_equal(fstatat(plain, "ro", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0555);
        assert_int_equal(st.st_mtim.tv_sec, 1000);
        assert_int_equal(st.st_mtim.tv_nsec, 7);
        assert_int_equal(fstatat(plain, "ro/f", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0444);
        /* Directories keep setgid; files lose setuid/setgid without owners. */
        assert_int_equal(fstatat(plain, "ro/sub", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 02755);
        assert_int_equal(fstatat(plain, "suid", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        assert_int_equal(st.st_uid, getuid());
        assert_int_equal(fstatat(plain, "ln", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_mtim.tv_sec, 42);

        if (geteuid() == 0) {
                assert_int_equal(mkdirat(m, "owned", 0755), 0);
                int owned = openat(m, "owned", O_PATH | O_DIRECTORY | O_CLOEXEC);
                assert_int_equal(extract(&a, owned, TAR_X_OWNER, NULL, msg, sizeof msg), 0);
                assert_int_equal(fstatat(owned, "suid", &st, 0), 0);
                assert_int_equal(st.st_mode & 07777, 06755);
                assert_int_equal(st.st_uid, 1234);
                assert_int_equal(st.st_gid, 5678);
                assert_int_equal(fstatat(owned, "ln", &st, AT_SYMLINK_NOFOLLOW), 0);
                assert_int_equal(st.st_uid, 1234);
                close(owned);
        } else {
                print_message("not root: owners not checked\n");
        }
        free(a.data);
        close(plain);
        close(m);
}

/* ---- the walker's edges -------------------------------------------------------------------------------------- */

static void test_walk_roots(void **state) {
        int w = mkscratch("roots");
        write_file(w, "file", "abc", 3, 0640);
        assert_int_equal(symlinkat("file", w, "link"), 0);
        assert_int_equal(mkfifoat(w, "fifo", 0600), 0);
        char msg[256];
        struct archive a = { 0 };
        struct tar_walk_stats st;
        /* A single file under another name. */
        assert_int_equal(walk(w, "file", "renamed", &a, &st, msg, sizeof msg), 0);
        assert_int_equal(st.entries, 1);
        assert_int_equal(mkdirat(w, "o1", 0755), 0);
        int o1 = openat(w, "o1", O_PATH | O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(extract(&a, o1, 0, NULL, msg, sizeof msg), 0);
        size_t n;
        char *d = read_all(o1, "renamed", &n);
        assert_string_equal(d, "abc");
        free(d);
        free(a.data);
        /* A symlink root is archived as a symlink, not followed. */
        a = (struct archive) { 0 };
        assert_int_equal(walk(w, "link", "link", &a, &st, msg, sizeof msg), 0);
        assert_int_equal(extract(&a, o1, 0, NULL, msg, sizeof msg), 0);
        struct stat sb;
        assert_int_equal(fstatat(o1, "link", &sb, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISLNK(sb.st_mode));
        free(a.data);
        /* A read of nothing is not mistaken for the end. */
        struct tar_walk *t;
        assert_int_equal(tar_walk_new(w, "file", "f", NULL, NULL, &t), 0);
        uint8_t one[1];
        assert_int_equal(tar_walk_read(t, one, 0), -EINVAL);
        tar_walk_free(t);
        /* Missing, special, or a bad archive name. */
        assert_int_equal(tar_walk_new(w, "missing", "m", NULL, NULL, &t), -ENOENT);
        assert_int_equal(tar_walk_new(w, "fifo", "f", NULL, NULL, &t), -EINVAL);
        assert_int_equal(tar_walk_new(w, "file", "../x", NULL, NULL, &t), -EINVAL);
        assert_int_equal(tar_walk_new(w, "file", "/abs", NULL, NULL, &t), -EINVAL);
        close(o1);
        close(w);
}

/* A file that shrinks after its header went out: the archive stays
 * well-formed (zeros fill the promised size) and the change is counted. */
static void test_walk_file_shrinks(void **state) {
        int w = mkscratch("shrink");
        static char data[200000];
        memset(data, 'd', sizeof data);
        write_file(w, "f", data, sizeof data, 0644);
        struct tar_walk *t;
        assert_int_equal(tar_walk_new(base_fd, "shrink", "shrink", NULL, NULL, &t), 0);
        struct archive a = { 0 };
        uint8_t buf[8192];
        ssize_t n = tar_walk_read(t, buf, 3 * 512 + 1000); /* dir header, file header, some content */
        assert_true(n > 0);
        put(&a, buf, (size_t) n);
        int fd = openat(w, "f", O_WRONLY | O_CLOEXEC);
        assert_int_equal(ftruncate(fd, 5000), 0);
        close(fd);
        while ((n = tar_walk_read(t, buf, sizeof buf)) > 0)
                put(&a, buf, (size_t) n);
        assert_int_equal(n, 0);
        struct tar_walk_stats st;
        tar_walk_stats(t, &st);
        assert_int_equal(st.changed, 1);
        tar_walk_free(t);
        assert_int_equal(a.len % 512, 0);
        assert_int_equal(mkdirat(w, "out", 0755), 0);
        int out = openat(w, "out", O_PATH | O_DIRECTORY | O_CLOEXEC);
        char msg[256];
        assert_int_equal(extract(&a, out, 0, NULL, msg, sizeof msg), 0);
        size_t len;
        char *d = read_all(out, "shrink/f", &len);
        assert_int_equal(len, sizeof data);
        assert_memory_equal(d, data, 5000);
        for (size_t i = 5000; i < len; i++)
                assert_int_equal(d[i], 0);
        free(d);
        free(a.data);
        close(out);
        close(w);
}

static void test_walk_limits(void **state) {
        int w = mkscratch("limits");
        char msg[512];
        /* Deeper than TAR_WALK_DEPTH_MAX directory levels. */
        int cur = openat(w, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        for (int i = 0; i < TAR_WALK_DEPTH_MAX + 2; i++) {
                assert_int_equal(mkdirat(cur, i ? "d" : "deep", 0755), 0);
                int next = openat(cur, i ? "d" : "deep", O_PATH | O_DIRECTORY | O_CLOEXEC);
                close(cur);
                cur = next;
        }
        close(cur);
        struct archive a = { 0 };
        assert_int_equal(walk(w, "deep", "deep", &a, NULL, msg, sizeof msg), -ELOOP);
        if (!strstr(msg, "directory levels"))
                fail_msg("%s", msg);
        free(a.data);
        /* A name longer than TAR_NAME_MAX. */
        char comp[201];
        memset(comp, 'x', 200);
        comp[200] = '\0';
        cur = openat(w, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        for (int i = 0; i < 22; i++) {
                const char *nm = i ? comp : "long";
                assert_int_equal(mkdirat(cur, nm, 0755), 0);
                int next = openat(cur, nm, O_PATH | O_DIRECTORY | O_CLOEXEC);
                close(cur);
                cur = next;
        }
        close(cur);
        a = (struct archive) { 0 };
        assert_int_equal(walk(w, "long", "long", &a, NULL, msg, sizeof msg), -ENAMETOOLONG);
        assert_non_null(strstr(msg, "name longer than"));
        free(a.data);
        close(w);
}

/* A file system mounted inside the tree: its mount point is archived
 * empty. Needs a mount namespace (root); skipped otherwise. */
static void test_walk_other_fs(void **state) {
        int w = mkscratch("xdev");
        assert_int_equal(mkdirat(w, "mnt", 0755), 0);
        write_file(w, "here", "h", 1, 0644);
        int pipefd[2];
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char path[600], msg[256];
                struct tar_walk_stats st = { 0 };
                int res[3] = { 0 };
                snprintf(path, sizeof path, "%s/xdev/mnt", base);
                if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                    mount("tmpfs", path, "tmpfs", 0, "size=1m") < 0) {
                        res[0] = 77;
                } else {
                        /* Fds from before unshare() see the old namespace. */
                        int m = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                        write_file(m, "inside", "i", 1, 0644);
                        snprintf(path, sizeof path, "%s/xdev", base);
                        int top = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                        struct archive a = { 0 };
                        res[0] = walk(top, ".", ".", &a, &st, msg, sizeof msg) < 0;
                        res[1] = (int) st.other_fs;
                        res[2] = (int) st.entries;
                }
                (void) !write(pipefd[1], res, sizeof res);
                _exit(0);
        }
        close(pipefd[1]);
        int res[3];
        assert_int_equal(read(pipefd[0], res, sizeof res), (ssize_t) sizeof res);
        close(pipefd[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (res[0] == 77) {
                print_message("no mount namespace here: skipped\n");
                close(w);
                skip();
        }
        assert_int_equal(res[0], 0);
        assert_int_equal(res[1], 1); /* the mount point */
        assert_int_equal(res[2], 3); /* ".", "here", "mnt" (not "mnt/inside") */
        close(w);
}

/* Whether mallinfo2() sees this process's allocations (a sanitizer's
 * allocator keeps its own books). */
static bool mallinfo_works(void) {
        size_t before = mallinfo2().uordblks;
        void *p = malloc(1 << 20);
        __asm__ volatile("" : : "r"(p) : "memory");
        bool works = mallinfo2().uordblks >= before + (1 << 20);
        free(p);
        return works;
}

/* A 64 MiB file (sparse: the disk is not the point) streamed from the
 * walker into the extractor in 256 KiB steps: neither holds more than a
 * bounded amount of memory whatever the size. */
static void test_bounded_memory(void **state) {
        if (!mallinfo_works()) {
                print_message("mallinfo2 does not see this allocator: skipped\n");
                skip();
        }
        int w = mkscratch("mem");
        assert_int_equal(mkdirat(w, "src", 0755), 0);
        assert_int_equal(mkdirat(w, "dst", 0755), 0);
        int fd = openat(w, "src/big", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, 64 << 20), 0);
        close(fd);
        int dst = openat(w, "dst", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        size_t chunk = 256 << 10;
        uint8_t *buf = malloc(chunk);
        assert_non_null(buf);
        size_t before = mallinfo2().uordblks, peak = before;
        struct tar_walk *t;
        struct tar_extract *x;
        assert_int_equal(tar_walk_new(w, "src", "src", NULL, NULL, &t), 0);
        assert_int_equal(tar_extract_new(dst, 0, &x), 0);
        ssize_t n;
        uint64_t total = 0;
        while ((n = tar_walk_read(t, buf, chunk)) > 0) {
                assert_int_equal(tar_extract_write(x, buf, (size_t) n), 0);
                total += (size_t) n;
                size_t now = mallinfo2().uordblks;
                if (now > peak)
                        peak = now;
        }
        assert_int_equal(n, 0);
        assert_int_equal(tar_extract_finish(x), 0);
        tar_extract_free(x);
        tar_walk_free(t);
        assert_true(total > 64u << 20);
        print_message("walk + extract of %llu MiB: heap peak +%zu KiB\n", (unsigned long long) (total >> 20),
                      (peak - before) >> 10);
        assert_true(peak - before < 256 << 10);
        struct stat st;
        assert_int_equal(fstatat(dst, "src/big", &st, 0), 0);
        assert_int_equal(st.st_size, 64 << 20);
        /* Not kept sparse: the extractor writes what it is given. */
        assert_int_equal(unlinkat(dst, "src/big", 0), 0);
        free(buf);
        close(dst);
        close(w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip_openat2),
                cmocka_unit_test(test_roundtrip_nofollow_walk),
                cmocka_unit_test(test_owner_name_cache),
                cmocka_unit_test(test_gnu_tar_extracts_ours),
                cmocka_unit_test(test_ours_extracts_gnu_pax),
                cmocka_unit_test(test_ours_extracts_gnu_gnu),
                cmocka_unit_test(test_ours_extracts_gnu_ustar),
                cmocka_unit_test(test_hostile_openat2),
                cmocka_unit_test(test_hostile_nofollow_walk),
                cmocka_unit_test(test_modes_and_owners),
                cmocka_unit_test(test_walk_roots),
                cmocka_unit_test(test_walk_file_shrinks),
                cmocka_unit_test(test_walk_limits),
                cmocka_unit_test(test_walk_other_fs),
                cmocka_unit_test(test_bounded_memory),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
