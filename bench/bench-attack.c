/* Figure 7: the attacks of issue 12, each while a host runs `true` again
 * and again beside it: the latency of that `true` (median and max of
 * b->attack_probes) against the same agent unattacked, the agent's RSS
 * under the 24-host no-read attack, and how long it takes to give the
 * memory back once the attackers go away. Informational rows only.
 *
 * The stalled file system is tests/integration/fuse-stall ($FUSE_STALL);
 * without it (or without /dev/fuse) those rows are skipped and say so. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vsock/client.h>
#include <vsock/error.h>
#include <vsock/frame.h>
#include <vsock/msg.h>

#include "bench.h"
#include "lib/msg-internal.h"

#define ATTACKERS 24
#define STALLED 4               /* stalled requests per FUSE attack */
#define BIG_FILE (16u << 20)    /* the agent's ReadFile limit */

/* ---- probing ----------------------------------------------------------------- */

/* Median and max of `true` on @a, as two rows named after @what. */
static void probe_rows(struct bench *b, const struct agent *a, const char *what, double base_median) {
        int n = b->attack_probes;
        double *v = calloc((size_t) n, sizeof *v);
        if (!v)
                return;
        int got = 0;
        for (int i = 0; i < n; i++) {
                int64_t t = exec_true_batch(b, a);
                if (t < 0)
                        break;
                v[got++] = (double) t / 1e6;
        }
        if (got > 0) {
                double max = 0;
                for (int i = 0; i < got; i++)
                        max = fmax(max, v[i]);
                char fig[64];
                snprintf(fig, sizeof fig, "%s: true median", what);
                bench_row(b, fig, stat_median(v, (size_t) got), base_median, "ms", T_NONE, 0,
                          "floor: unattacked");
                snprintf(fig, sizeof fig, "%s: true max", what);
                bench_row(b, fig, max, NAN, "ms", T_NONE, 0, NULL);
        }
        free(v);
}

static double base_median(struct bench *b, const struct agent *a) {
        int n = b->attack_probes;
        double *v = calloc((size_t) n, sizeof *v);
        double m = NAN;
        int got = 0;
        for (int i = 0; v && i < n; i++) {
                int64_t t = exec_true_batch(b, a);
                if (t < 0)
                        break;
                v[got++] = (double) t / 1e6;
        }
        if (got > 0)
                m = stat_median(v, (size_t) got);
        free(v);
        return m;
}

/* ---- raw requests -------------------------------------------------------------- */

static vsock_conn *dial(struct bench *b, const struct agent *a) {
        vsock_conn *c = NULL;
        int r = vsock_dial_str(a->exec_addr, 0, 10000, -1, &c);
        if (r < 0) {
                bench_fail(b, "dial: %s", vsock_strerror(r));
                return NULL;
        }
        vsock_conn_set_deadline(c, vsock_deadline_in(120000));
        return c;
}

static vsock_conn *send_exec(struct bench *b, const struct agent *a, const struct vsock_exec_request *req) {
        uint8_t *p = NULL;
        size_t n = 0;
        vsock_conn *c = dial(b, a);
        if (!c || vsock_exec_request_encode(req, &p, &n) < 0 || vsock_write_message(c, VSOCK_MSG_EXEC, p, n) < 0) {
                bench_fail(b, "cannot send an exec request");
                free(p);
                if (c)
                        vsock_conn_close(c);
                return NULL;
        }
        free(p);
        return c;
}

static vsock_conn *send_path(struct bench *b, const struct agent *a, uint8_t type, const char *path) {
        char json[512];
        int n = snprintf(json, sizeof json, "{\"path\":\"%s\"}", path);
        vsock_conn *c = dial(b, a);
        if (c && vsock_write_message(c, type, json, (size_t) n) < 0) {
                bench_fail(b, "cannot send a file request");
                vsock_conn_close(c);
                return NULL;
        }
        return c;
}

static void close_all(vsock_conn **c, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (c[i])
                        vsock_conn_close(c[i]);
}

/* The agent's reply to @c is in the socket (peeked, nothing read). */
static bool answered(vsock_conn *c) {
        char t[VSOCK_FRAME_HEADER_SIZE];
        return recv(vsock_conn_fd(c), t, sizeof t, MSG_PEEK | MSG_DONTWAIT) == (ssize_t) sizeof t;
}

/* ---- the stalled file system ------------------------------------------------- */

struct stall {
        pid_t pid;
        int release_fd;
        char dir[96];
};

static int stall_start(struct bench *b, struct stall *s, const char **why) {
        const char *helper = getenv("FUSE_STALL");
        *s = (struct stall) { .pid = -1, .release_fd = -1 };
        if (!helper || access(helper, X_OK) < 0) {
                *why = "no fuse-stall helper ($FUSE_STALL)";
                return -ENOENT;
        }
        if (access("/dev/fuse", R_OK | W_OK) < 0) {
                *why = "no /dev/fuse";
                return -ENOENT;
        }
        snprintf(s->dir, sizeof s->dir, "%s/stall", b->dir);
        int in[2], out[2];
        if (mkdir(s->dir, 0755) < 0 || pipe2(in, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(out, O_CLOEXEC) < 0) {
                close(in[0]);
                close(in[1]);
                return -errno;
        }
        s->pid = fork();
        if (s->pid == 0) {
                if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
                        _exit(126);
                execl(helper, "fuse-stall", s->dir, (char *) NULL);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        s->release_fd = in[1];
        char line[8] = "";
        ssize_t n = s->pid > 0 ? read(out[0], line, 6) : -1;
        close(out[0]);
        if (n != 6 || memcmp(line, "ready\n", 6) != 0) {
                *why = "fuse-stall could not mount";
                close(s->release_fd);
                if (s->pid > 0) {
                        kill(s->pid, SIGKILL);
                        waitpid(s->pid, NULL, 0);
                }
                rmdir(s->dir);
                return -EIO;
        }
        return 0;
}

/* Everything stuck in it gets EIO; it exits; the mount goes. */
static void stall_release(struct stall *s) {
        close(s->release_fd);
        waitpid(s->pid, NULL, 0);
        (void) umount2(s->dir, MNT_DETACH);
        rmdir(s->dir);
}

static void fig_stalled(struct bench *b, const struct agent *a, double base) {
        struct stall st;
        const char *why = "";
        if (stall_start(b, &st, &why) < 0) {
                printf("  stalled file system: skipped (%s)\n", why);
                return;
        }
        char cwd[128], prog[128], path_env[160], rstall[128];
        snprintf(cwd, sizeof cwd, "%s/stallcwd", st.dir);
        snprintf(prog, sizeof prog, "%s/stallprog", st.dir);
        snprintf(path_env, sizeof path_env, "%s/stallbin:/usr/bin:/bin", st.dir);
        snprintf(rstall, sizeof rstall, "%s/rstall", st.dir);
        struct vsock_env env = { .key = "PATH", .value = path_env };
        struct {
                const char *what;
                struct vsock_exec_request req;
                const char *read_path;
        } attacks[] = {
                { "stalled working_dir", { .command = "true", .working_dir = cwd }, NULL },
                { "stalled program", { .command = prog }, NULL },
                { "stalled PATH entry", { .command = "true", .env = &env, .n_env = 1 }, NULL },
                { "stalled ReadFile", { 0 }, rstall },
        };
        for (size_t k = 0; k < sizeof attacks / sizeof attacks[0]; k++) {
                vsock_conn *c[STALLED] = { 0 };
                for (int i = 0; i < STALLED; i++)
                        c[i] = attacks[k].read_path ? send_path(b, a, VSOCK_MSG_READ_FILE, attacks[k].read_path)
                                                    : send_exec(b, a, &attacks[k].req);
                /* The stalled requests are on the agent's workers (their
                 * answer comes only at --io-timeout). */
                sleep_ms(200);
                probe_rows(b, a, attacks[k].what, base);
                close_all(c, STALLED);
        }
        stall_release(&st);
}

/* ---- load from a thread -------------------------------------------------------- */

struct loader {
        struct bench *b;
        const struct agent *a;
        atomic_bool stop;
        atomic_int rounds;
        const char *list_dir;           /* ListFiles of this, or */
        const uint8_t *request;         /* this exec request (payload) */
        size_t request_len;
};

static void *loader_main(void *arg) {
        struct loader *l = arg;
        while (!atomic_load(&l->stop)) {
                if (l->list_dir) {
                        struct vsock_call call = VSOCK_CALL_INIT;
                        call.deadline_ns = vsock_deadline_in(120000);
                        struct vsock_file_entry *e = NULL;
                        size_t n = 0;
                        if (vsock_list_files_at(l->a->exec_addr, l->list_dir, &call, &e, &n) < 0)
                                break;
                        vsock_file_entries_free(e, n);
                } else {
                        vsock_conn *c = dial(l->b, l->a);
                        if (!c || vsock_write_message(c, VSOCK_MSG_EXEC, l->request, l->request_len) < 0) {
                                if (c)
                                        vsock_conn_close(c);
                                break;
                        }
                        uint8_t t, *d;
                        uint32_t n;
                        if (vsock_read_message(c, &t, &d, &n) == 0)
                                free(d);
                        vsock_conn_close(c);
                }
                atomic_fetch_add(&l->rounds, 1);
        }
        return NULL;
}

/* Probe while @l runs (once it completed a round: the attack is warm). */
static void probe_under(struct bench *b, const struct agent *a, struct loader *l, const char *what, double base) {
        pthread_t th;
        if (pthread_create(&th, NULL, loader_main, l) != 0) {
                bench_fail(b, "pthread_create");
                return;
        }
        int64_t end = mono_ns() + 120 * 1000000000LL;
        while (atomic_load(&l->rounds) < 1 && mono_ns() < end)
                sleep_ms(5);
        probe_rows(b, a, what, base);
        atomic_store(&l->stop, true);
        pthread_join(th, NULL);
}

static void fig_big_listing(struct bench *b, const struct agent *a, double base) {
        char dir[128];
        snprintf(dir, sizeof dir, "%s/many", b->dir);
        if (mkdir(dir, 0755) < 0) {
                bench_fail(b, "mkdir %s: %s", dir, strerror(errno));
                return;
        }
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        for (int i = 0; dfd >= 0 && i < b->list_entries; i++) {
                char name[32];
                snprintf(name, sizeof name, "entry-%07d", i);
                int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                if (fd < 0) {
                        bench_fail(b, "create %s: %s", name, strerror(errno));
                        break;
                }
                close(fd);
        }
        if (dfd >= 0)
                close(dfd);
        struct loader l = { .b = b, .a = a, .list_dir = dir };
        char what[48];
        snprintf(what, sizeof what, "%dk-entry ListFiles", b->list_entries / 1000);
        probe_under(b, a, &l, what, base);
}

static void fig_escapes(struct bench *b, const struct agent *a, double base) {
        size_t n = (b->escape_bytes - 64) / 6;
        size_t len = 14 + n * 6 + 2;
        uint8_t *p = malloc(len);
        if (!p)
                return;
        memcpy(p, "{\"command\":\"", 12);
        for (size_t i = 0; i < n; i++)
                memcpy(p + 12 + 6 * i, "\\u00e9", 6);
        memcpy(p + 12 + 6 * n, "\"}", 2);
        struct loader l = { .b = b, .a = a, .request = p, .request_len = 12 + 6 * n + 2 };
        char what[48];
        snprintf(what, sizeof what, "%zu MiB escape-heavy JSON", b->escape_bytes >> 20);
        probe_under(b, a, &l, what, base);
        free(p);
}

/* ---- 24 hosts that never read ------------------------------------------------- */

static bool wait_answered(vsock_conn **c, size_t n) {
        int64_t end = mono_ns() + 120 * 1000000000LL;
        for (size_t i = 0; i < n; i++)
                while (c[i] && !answered(c[i])) {
                        if (mono_ns() > end)
                                return false;
                        sleep_ms(5);
                }
        return true;
}

/* Close the attackers and time until the agent's RSS is within 8 MiB of
 * @idle_kib again. */
static double recover_ms(const struct agent *a, vsock_conn **c, size_t n, long idle_kib) {
        int64_t t0 = mono_ns(), end = t0 + 60 * 1000000000LL;
        close_all(c, n);
        while (agent_status_kib(a, "VmRSS") > idle_kib + 8 * 1024) {
                if (mono_ns() > end)
                        return NAN;
                sleep_ms(2);
        }
        return (double) (mono_ns() - t0) / 1e6;
}

static void fig_no_read(struct bench *b, const struct agent *a, double base) {
        char path[128];
        snprintf(path, sizeof path, "%s/big", b->dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || ftruncate(fd, BIG_FILE) < 0) {
                bench_fail(b, "%s: %s", path, strerror(errno));
                if (fd >= 0)
                        close(fd);
                return;
        }
        close(fd);
        char size[16];
        snprintf(size, sizeof size, "%u", BIG_FILE);
        char *args[] = { "-c", size, "/dev/zero" };
        struct vsock_exec_request big_out = { .command = "head", .args = args, .n_args = 3 };
        for (int kind = 0; kind < 2; kind++) {
                const char *what = kind == 0 ? "24 no-read ReadFile 16M" : "24 no-read batch 16M";
                long idle = agent_status_kib(a, "VmRSS");
                vsock_conn *c[ATTACKERS] = { 0 };
                for (int i = 0; i < ATTACKERS; i++)
                        c[i] = kind == 0 ? send_path(b, a, VSOCK_MSG_READ_FILE, path) : send_exec(b, a, &big_out);
                if (!wait_answered(c, ATTACKERS)) {
                        bench_fail(b, "%s: not answered", what);
                        close_all(c, ATTACKERS);
                        continue;
                }
                char fig[64];
                snprintf(fig, sizeof fig, "%s: agent RSS", what);
                bench_row(b, fig, (double) agent_status_kib(a, "VmRSS") / KIB, (double) idle / KIB, "MiB", T_NONE, 0,
                          "floor: before; budget 64 MiB");
                probe_rows(b, a, what, base);
                snprintf(fig, sizeof fig, "%s: recovery", what);
                bench_row(b, fig, recover_ms(a, c, ATTACKERS, idle), NAN, "ms", T_NONE, 0,
                          "hosts close -> RSS back");
        }
        unlink(path);
}

void fig_attacks(struct bench *b) {
        struct agent a;
        if (agent_start(b, &a, "attack") < 0)
                return;
        double base = base_median(b, &a);
        bench_row(b, "unattacked: true median", base, NAN, "ms", T_NONE, 0, NULL);
        fig_stalled(b, &a, base);
        fig_big_listing(b, &a, base);
        fig_escapes(b, &a, base);
        fig_no_read(b, &a, base);
        agent_stop(b, &a);
}
