/* vsock-vmcheck: the library side of the VM test, run inside the guest
 * against agents reached over AF_VSOCK loopback (CID 1) or unix sockets,
 * and on the host against the guest through vsock-vhost (vsock-mux:).
 * Each subcommand checks one thing, prints what it saw, and exits 0 on
 * success, 1 on failure, 2 on bad usage. `bench` prints figures.
 *
 * Built statically (vm/meson.build) so the initramfs needs no libc. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <vsock/vsock.h>

static const char *prog = "vsock-vmcheck";

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "%s: ", prog);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        return 1;
}

static double ms_since(int64_t t0) {
        return (double) (vsock_now_ns() - t0) / 1e6;
}

/* A request running `sh -c SCRIPT`. */
static struct vsock_exec_request sh_request(const char *script, char **argv3) {
        argv3[0] = (char *) "-c";
        argv3[1] = (char *) script;
        argv3[2] = NULL;
        return (struct vsock_exec_request){ .command = (char *) "sh", .args = argv3, .n_args = 2 };
}

/* Output collected by an on_output callback (bounded). */
struct collect {
        char data[65536];
        size_t len;
        int (*hook)(struct collect *c);
        void *hook_data;
};

static int collect_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        struct collect *c = userdata;
        size_t room = sizeof(c->data) - 1 - c->len;
        size_t n = len < room ? len : room;
        memcpy(c->data + c->len, data, n);
        c->len += n;
        c->data[c->len] = '\0';
        return c->hook ? c->hook(c) : 0;
}

/* ---- cid ----------------------------------------------------------------- */

static int cmd_cid(int argc, char **argv) {
        uint32_t cid = 0;
        int r = vsock_get_local_cid(&cid);
        if (r < 0)
                return fail("local CID ioctl: %s", vsock_strerror(r));
        printf("%u\n", cid);
        return 0;
}

/* ---- ready: wait for a ready port, then read the kernel's uptime -------- */

static int cmd_ready(int argc, char **argv) {
        if (argc < 1)
                return 2;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(60000);
        int64_t t0 = vsock_now_ns();
        int r = vsock_wait_ready(argv[0], &call);
        /* Read at once: this is the boot-to-ready figure. /proc is mounted
         * by the agent before it listens, so it is there by now. */
        char up[64] = "?";
        FILE *f = fopen("/proc/uptime", "re");
        if (f) {
                if (fscanf(f, "%63s", up) != 1)
                        strcpy(up, "?");
                fclose(f);
        }
        if (r < 0)
                return fail("wait_ready %s: %s (uptime %s s)", argv[0], vsock_strerror(r), up);
        printf("%s accepted after %.0f ms of waiting; uptime %s s\n", argv[0], ms_since(t0), up);
        return 0;
}

/* ---- refused: an agent that must turn this peer away ------------------- */

static int cmd_refused(int argc, char **argv) {
        if (argc < 1)
                return 2;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(10000);
        char *a[3];
        struct vsock_exec_request req = sh_request("echo should-not-run", a);
        struct vsock_exec_result res = { 0 };
        int r = vsock_exec_at(argv[0], &req, &call, &res);
        if (r >= 0) {
                vsock_exec_result_clear(&res);
                return fail("%s ran a command for a refused peer", argv[0]);
        }
        if (vsock_err_kind(r) == VSOCK_E_TIMEOUT)
                return fail("%s: timed out instead of refusing", argv[0]);
        printf("refused: %s\n", vsock_strerror(r));
        return 0;
}

/* ---- cancel: deadline and cancel fd both end the remote command --------- */

static int wait_gone(pid_t pid) {
        /* Bounded poll (10 s): the agent kills and reaps asynchronously. */
        for (int i = 0; i < 1000; i++) {
                if (kill(pid, 0) < 0 && errno == ESRCH)
                        return 0;
                char path[64], state = 0;
                snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
                FILE *f = fopen(path, "re");
                if (f) {
                        /* A zombie has been killed already; its reaping is
                         * PID 1's business, checked elsewhere. */
                        int ok = fscanf(f, "%*d (%*[^)]) %c", &state) == 1 && state == 'Z';
                        fclose(f);
                        if (ok)
                                return 0;
                }
                (void) nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
        }
        return -1;
}

static pid_t read_pid_file(const char *path) {
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        int pid = -1;
        if (fscanf(f, "%d", &pid) != 1)
                pid = -1;
        fclose(f);
        return pid;
}

static int cancel_one(const char *addr, bool use_fd) {
        const char *pidfile = "/tmp/vmcheck-cancel.pid";
        (void) unlink(pidfile);
        char script[128];
        snprintf(script, sizeof(script), "echo $$ > %s; exec sleep 120", pidfile);
        char *a[3];
        struct vsock_exec_request req = sh_request(script, a);
        struct vsock_call call = VSOCK_CALL_INIT;
        int tfd = -1;
        if (use_fd) {
                tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
                struct itimerspec its = { .it_value = { .tv_sec = 1, .tv_nsec = 500 * 1000 * 1000 } };
                if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0)
                        return fail("timerfd: %m");
                call.cancel_fd = tfd;
        } else
                call.deadline_ns = vsock_deadline_in(1500);

        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        struct vsock_exec_result res = { 0 };
        int64_t t0 = vsock_now_ns();
        int r = use_fd ? vsock_exec_stream_at(addr, &req, &io, &call, &res)
                       : vsock_exec_at(addr, &req, &call, &res);
        if (tfd >= 0)
                close(tfd);
        enum vsock_errkind want = use_fd ? VSOCK_E_CANCELLED : VSOCK_E_TIMEOUT;
        if (r >= 0) {
                vsock_exec_result_clear(&res);
                return fail("%s: command finished instead of being cancelled", use_fd ? "cancel-fd" : "deadline");
        }
        if (vsock_err_kind(r) != want)
                return fail("%s: got '%s'", use_fd ? "cancel-fd" : "deadline", vsock_strerror(r));
        double waited = ms_since(t0);
        pid_t pid = read_pid_file(pidfile);
        if (pid <= 0)
                return fail("the command never started (no %s)", pidfile);
        if (wait_gone(pid) < 0)
                return fail("pid %d still running 10 s after the %s", (int) pid,
                            use_fd ? "cancel" : "deadline");
        printf("%s: %s after %.0f ms; remote pid %d gone\n", use_fd ? "cancel-fd" : "deadline",
               vsock_strerror(r), waited, (int) pid);
        return 0;
}

/* A host that half-closes keeps its command (issue 11.3); closing later
 * still ends it, though AF_VSOCK raises no event for that second step. */
static int cancel_after_half_close(const char *addr) {
        const char *pidfile = "/tmp/vmcheck-halfclose.pid";
        (void) unlink(pidfile);
        char json[160];
        snprintf(json, sizeof json, "{\"command\":\"echo $$ > %s; exec sleep 120\"}", pidfile);
        vsock_conn *c = NULL;
        int r = vsock_dial_str(addr, 0, 10000, -1, &c);
        if (r < 0)
                return fail("half-close: dial %s: %s", addr, vsock_strerror(r));
        if ((r = vsock_write_message(c, VSOCK_MSG_EXEC, json, strlen(json))) < 0 ||
            (r = vsock_conn_shutdown_write(c)) < 0) {
                vsock_conn_close(c);
                return fail("half-close: send: %s", vsock_strerror(r));
        }
        pid_t pid = -1;
        for (int i = 0; i < 1000 && pid <= 0; i++) {
                (void) nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
                pid = read_pid_file(pidfile);
        }
        if (pid <= 0) {
                vsock_conn_close(c);
                return fail("half-close: the command never started (no %s)", pidfile);
        }
        /* Past the agent's EOF: the command must still run. */
        (void) nanosleep(&(struct timespec){ .tv_nsec = 500 * 1000 * 1000 }, NULL);
        if (kill(pid, 0) < 0) {
                vsock_conn_close(c);
                return fail("half-close: pid %d ended on the half-close", (int) pid);
        }
        int64_t t0 = vsock_now_ns();
        vsock_conn_close(c);
        if (wait_gone(pid) < 0)
                return fail("half-close: pid %d still running 10 s after the host closed", (int) pid);
        printf("half-close kept the command; the later close ended it after %.0f ms\n", ms_since(t0));
        return 0;
}

static int cmd_cancel(int argc, char **argv) {
        if (argc < 1)
                return 2;
        int r = cancel_one(argv[0], false);
        if (!r)
                r = cancel_one(argv[0], true);
        return r ? r : cancel_after_half_close(argv[0]);
}

/* Run @req in pipe or TTY mode with a control channel that @hook gets (as
 * col->hook_data) to signal or resize on what the output shows. Returns
 * 0 with the exit code and the output in @col, or the failure's status. */
static int run_with_ctl(const char *addr, bool tty, const struct vsock_exec_request *req,
                        int (*hook)(struct collect *), struct collect *col, int64_t *ret_code) {
        vsock_exec_ctl *ctl = NULL;
        int r = vsock_exec_ctl_new(&ctl);
        if (r < 0)
                return fail("exec_ctl_new: %s", vsock_strerror(r));
        col->hook = hook;
        col->hook_data = ctl;
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = collect_output;
        io.userdata = col;
        io.ctl = ctl;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(60000);
        struct vsock_exec_result res = { 0 };
        r = tty ? vsock_exec_tty_at(addr, req, &io, &call, &res) : vsock_exec_pipe_at(addr, req, &io, &call, &res);
        vsock_exec_ctl_free(ctl);
        if (r < 0)
                return fail("%s exec: %s (%s)", tty ? "tty" : "pipe", vsock_strerror(r), call.remote_error);
        *ret_code = res.exit_code;
        vsock_exec_result_clear(&res);
        return 0;
}

/* ---- signal: forwarded to the command's process group ------------------ */

static int signal_hook(struct collect *c) {
        if (!c->hook_data || !strstr(c->data, "ready"))
                return 0;
        int r = vsock_exec_ctl_signal(c->hook_data, SIGTERM);
        c->hook_data = NULL;
        return r < 0 ? r : 0;
}

static int cmd_signal(int argc, char **argv) {
        if (argc < 1)
                return 2;
        char *a[3];
        struct vsock_exec_request req =
                sh_request("trap 'echo got-term; exit 3' TERM; echo ready; "
                           "i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; exit 9",
                           a);
        static struct collect col;
        int64_t code;
        int r = run_with_ctl(argv[0], false, &req, signal_hook, &col, &code);
        if (r != 0)
                return r;
        if (code != 3 || !strstr(col.data, "got-term"))
                return fail("after SIGTERM: exit %lld, output '%s'", (long long) code, col.data);
        printf("SIGTERM delivered: trap ran, exit 3\n");
        return 0;
}

/* ---- tty: a pty of the requested size, resizable ----------------------- */

static int resize_hook(struct collect *c) {
        if (c->hook_data && strstr(c->data, "40 100")) {
                int r = vsock_exec_ctl_resize(c->hook_data, 50, 120);
                c->hook_data = NULL;
                return r < 0 ? r : 0;
        }
        return 0;
}

static int cmd_tty(int argc, char **argv) {
        if (argc < 1)
                return 2;
        char *a[3];
        struct vsock_exec_request req = sh_request(
                "tty; stty size; i=0; "
                "while [ \"$(stty size)\" != '50 120' ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; "
                "stty size; exit 4",
                a);
        req.rows = 40;
        req.cols = 100;
        static struct collect col;
        int64_t code;
        int r = run_with_ctl(argv[0], true, &req, resize_hook, &col, &code);
        if (r != 0)
                return r;
        if (code != 4 || !strstr(col.data, "/dev/pts/") || !strstr(col.data, "40 100") ||
            !strstr(col.data, "50 120"))
                return fail("tty: exit %lld, output '%s'", (long long) code, col.data);
        printf("tty: /dev/pts, 40x100 then resized to 50x120, exit 4\n");
        return 0;
}

/* ---- stdin: a large pipe-mode input arrives intact ---------------------- */

static int cmd_stdin(int argc, char **argv) {
        if (argc < 1)
                return 2;
        const char *path = "/tmp/vmcheck-stdin.bin";
        static char chunk[65536];
        for (size_t i = 0; i < sizeof(chunk); i++)
                chunk[i] = (char) ('a' + (i * 13) % 26);
        FILE *f = fopen(path, "we");
        if (!f)
                return fail("fopen %s: %m", path);
        for (int i = 0; i < 64; i++) /* 4 MiB */
                fwrite(chunk, 1, sizeof(chunk), f);
        if (fclose(f) != 0)
                return fail("writing %s failed", path);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return fail("open %s: %m", path);

        char *a[3];
        struct vsock_exec_request req = sh_request("md5sum | cut -d' ' -f1", a);
        static struct collect col;
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = collect_output;
        io.userdata = &col;
        io.stdin_fd = fd;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(60000);
        struct vsock_exec_result res = { 0 };
        int r = vsock_exec_pipe_at(argv[0], &req, &io, &call, &res);
        close(fd);
        if (r < 0)
                return fail("pipe exec: %s", vsock_strerror(r));
        int64_t code = res.exit_code;
        vsock_exec_result_clear(&res);

        char want[64] = "";
        FILE *p = popen("md5sum < /tmp/vmcheck-stdin.bin | cut -d' ' -f1", "r");
        if (!p || !fgets(want, sizeof(want), p))
                return fail("local md5sum failed");
        pclose(p);
        if (code != 0 || strcmp(col.data, want) != 0)
                return fail("stdin: exit %lld, remote digest '%s', local '%s'", (long long) code, col.data, want);
        printf("4 MiB of stdin arrived intact (md5 %.32s)\n", want);
        return 0;
}

/* ---- files ---------------------------------------------------------------- */

static int cmd_files(int argc, char **argv) {
        if (argc < 1)
                return 2;
        const char *addr = argv[0];
        size_t n = 300000;
        uint8_t *data = malloc(n);
        if (!data)
                return fail("out of memory");
        for (size_t i = 0; i < n; i++)
                data[i] = (uint8_t) (i * 7 + (i >> 8));
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(30000);
        (void) mkdir("/tmp/vmcheck-files", 0755);
        int r = vsock_write_file_at(addr, "/tmp/vmcheck-files/blob", data, n, 0640, &call);
        if (r < 0)
                return fail("write_file: %s (%s)", vsock_strerror(r), call.remote_error);
        struct stat st;
        if (stat("/tmp/vmcheck-files/blob", &st) < 0 || (size_t) st.st_size != n || (st.st_mode & 07777) != 0640)
                return fail("written file: size %lld mode %o", (long long) st.st_size, st.st_mode & 07777);

        uint8_t *back = NULL;
        size_t blen = 0;
        r = vsock_read_file_at(addr, "/tmp/vmcheck-files/blob", &call, &back, &blen);
        if (r < 0)
                return fail("read_file: %s (%s)", vsock_strerror(r), call.remote_error);
        if (blen != n || memcmp(back, data, n) != 0)
                return fail("read_file returned %zu different bytes", blen);
        free(back);
        free(data);

        struct vsock_file_entry *ents = NULL;
        size_t nents = 0;
        r = vsock_list_files_at(addr, "/tmp/vmcheck-files", &call, &ents, &nents);
        if (r < 0)
                return fail("list_files: %s (%s)", vsock_strerror(r), call.remote_error);
        bool found = false;
        for (size_t i = 0; i < nents; i++)
                if (strcmp(ents[i].name, "blob") == 0 && ents[i].size == (int64_t) n && !ents[i].is_dir)
                        found = true;
        vsock_file_entries_free(ents, nents);
        if (!found)
                return fail("list_files does not show blob with its size");

        r = vsock_read_file_at(addr, "/nonexistent/file", &call, &back, &blen);
        if (r >= 0 || vsock_err_kind(r) != VSOCK_E_FILE_REMOTE)
                return fail("reading a missing file: %s", r >= 0 ? "succeeded" : vsock_strerror(r));
        printf("write/read/list of a 300000-byte file; remote error '%s'\n", call.remote_error);
        return 0;
}

/* ---- forward and echo: bytes through an echo server come back intact ---- */

/* 32 lock-step rounds of 32 KiB through an echo server on @c (the echo
 * side's buffers never fill up). Returns the bytes echoed, or -1 with the
 * failure printed. */
static long echo_rounds(vsock_conn *c, const char *what) {
        static uint8_t out[32768], in[32768];
        long total = 0;
        vsock_conn_set_deadline(c, vsock_deadline_in(60000));
        for (int round = 0; round < 32; round++) {
                for (size_t i = 0; i < sizeof(out); i++)
                        out[i] = (uint8_t) (round * 31 + i);
                int r = vsock_conn_write(c, out, sizeof(out));
                if (r >= 0)
                        r = vsock_conn_read_full(c, in, sizeof(in), NULL);
                if (r < 0)
                        return fail("%s: echo round %d: %s", what, round, vsock_strerror(r)), -1;
                if (memcmp(in, out, sizeof(in)) != 0)
                        return fail("%s: echo round %d: data differs", what, round), -1;
                total += (long) sizeof(out);
        }
        return total;
}

static int cmd_forward(int argc, char **argv) {
        if (argc < 2)
                return 2;
        const char *addr = argv[0];
        int port = atoi(argv[1]);
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(30000);
        vsock_conn *c = NULL;
        int r = vsock_open_port_forward_at(addr, NULL, (uint16_t) port, &call, &c);
        if (r < 0)
                return fail("forward to 127.0.0.1:%d: %s (%s)", port, vsock_strerror(r), call.remote_error);
        long total = echo_rounds(c, "forward");
        vsock_conn_close(c);
        if (total < 0)
                return 1;

        /* Nothing listens on port 1: the agent must say so. */
        struct vsock_call call2 = VSOCK_CALL_INIT;
        call2.deadline_ns = vsock_deadline_in(30000);
        r = vsock_open_port_forward_at(addr, "127.0.0.1", 1, &call2, &c);
        if (r >= 0) {
                vsock_conn_close(c);
                return fail("forward to a closed port was accepted");
        }
        if (vsock_err_kind(r) != VSOCK_E_PORT_FORWARD_REJECTED)
                return fail("forward to a closed port: %s", vsock_strerror(r));
        printf("forward: %ld bytes echoed through 127.0.0.1:%d; closed port rejected ('%s')\n", total, port,
               call2.remote_error);
        return 0;
}

/* A raw stream to an echo server at ADDR (a guest reaching a host service
 * through vsock-vhost: vsock:2:PORT). */
static int cmd_echo(int argc, char **argv) {
        if (argc < 1)
                return 2;
        vsock_conn *c = NULL;
        int r = vsock_dial_str(argv[0], 0, 10000, -1, &c);
        if (r < 0)
                return fail("dial %s: %s", argv[0], vsock_strerror(r));
        long total = echo_rounds(c, argv[0]);
        vsock_conn_close(c);
        if (total < 0)
                return 1;
        printf("%ld bytes echoed by %s\n", total, argv[0]);
        return 0;
}

/* Nothing listens at ADDR: the dial must fail, promptly. */
static int cmd_dial_refused(int argc, char **argv) {
        if (argc < 1)
                return 2;
        vsock_conn *c = NULL;
        int r = vsock_dial_str(argv[0], 0, 10000, -1, &c);
        if (r >= 0) {
                vsock_conn_close(c);
                return fail("%s accepted a connection", argv[0]);
        }
        if (vsock_err_kind(r) == VSOCK_E_TIMEOUT)
                return fail("%s: timed out instead of refusing", argv[0]);
        printf("refused: %s\n", vsock_strerror(r));
        return 0;
}

/* ---- concurrent: N sessions alive at the same time ---------------------- */

struct session {
        pthread_t thread;
        int idx;
        const char *addr;
        int stdin_w;
        int stdin_r;
        char out[64];
        size_t out_len;
        bool counted;
        int rc;
        int64_t exit_code;
};

static pthread_mutex_t conc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conc_cond = PTHREAD_COND_INITIALIZER;
static int conc_echoed;

static int conc_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        struct session *s = userdata;
        size_t room = sizeof(s->out) - 1 - s->out_len;
        size_t n = len < room ? len : room;
        memcpy(s->out + s->out_len, data, n);
        s->out_len += n;
        s->out[s->out_len] = '\0';
        if (!s->counted && strchr(s->out, '\n')) {
                s->counted = true;
                pthread_mutex_lock(&conc_lock);
                conc_echoed++;
                pthread_cond_broadcast(&conc_cond);
                pthread_mutex_unlock(&conc_lock);
        }
        return 0;
}

static void *conc_thread(void *arg) {
        struct session *s = arg;
        struct vsock_exec_request req = { .command = (char *) "cat" };
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = conc_output;
        io.userdata = s;
        io.stdin_fd = s->stdin_r;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(120000);
        struct vsock_exec_result res = { 0 };
        s->rc = vsock_exec_pipe_at(s->addr, &req, &io, &call, &res);
        s->exit_code = res.exit_code;
        if (s->rc >= 0)
                vsock_exec_result_clear(&res);
        if (!s->counted) {
                /* Failed before echoing: wake the waiter so it can give up. */
                pthread_mutex_lock(&conc_lock);
                conc_echoed += 1000000;
                pthread_cond_broadcast(&conc_cond);
                pthread_mutex_unlock(&conc_lock);
        }
        return NULL;
}

static int cmd_concurrent(int argc, char **argv) {
        if (argc < 2)
                return 2;
        int n = atoi(argv[1]);
        if (n <= 0 || n > 1000)
                return 2;
        struct session *ss = calloc((size_t) n, sizeof(*ss));
        if (!ss)
                return fail("out of memory");
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        for (int i = 0; i < n; i++) {
                int p[2];
                if (pipe2(p, O_CLOEXEC) < 0)
                        return fail("pipe: %m");
                ss[i] = (struct session){ .idx = i, .addr = argv[0], .stdin_r = p[0], .stdin_w = p[1] };
                char line[32];
                int len = snprintf(line, sizeof(line), "session-%d\n", i);
                if (write(p[1], line, (size_t) len) != len)
                        return fail("write: %m");
                if (pthread_create(&ss[i].thread, &attr, conc_thread, &ss[i]) != 0)
                        return fail("pthread_create failed at %d", i);
        }

        /* Every cat has echoed its line while none has seen EOF yet: all n
         * sessions were open at once. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 120;
        pthread_mutex_lock(&conc_lock);
        while (conc_echoed < n)
                if (pthread_cond_timedwait(&conc_cond, &conc_lock, &until) == ETIMEDOUT)
                        break;
        int echoed = conc_echoed;
        pthread_mutex_unlock(&conc_lock);

        for (int i = 0; i < n; i++)
                close(ss[i].stdin_w);
        int bad = 0;
        for (int i = 0; i < n; i++) {
                pthread_join(ss[i].thread, NULL);
                close(ss[i].stdin_r);
                char want[32];
                snprintf(want, sizeof(want), "session-%d\n", i);
                if (ss[i].rc < 0 || ss[i].exit_code != 0 || strcmp(ss[i].out, want) != 0) {
                        if (bad++ < 5)
                                fprintf(stderr, "%s: session %d: %s, exit %lld, output '%s'\n", prog, i,
                                        ss[i].rc < 0 ? vsock_strerror(ss[i].rc) : "ok",
                                        (long long) ss[i].exit_code, ss[i].out);
                }
        }
        free(ss);
        if (echoed != n || bad)
                return fail("%d of %d sessions echoed while all were open; %d failed", echoed > n ? -1 : echoed,
                            n, bad);
        printf("%d pipe sessions open at once, all echoed and exited 0\n", n);
        return 0;
}

/* ---- bench ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

static int bench_latency(const char *addr, int n, double *ret_median, double *ret_p90) {
        double *t = calloc((size_t) n, sizeof(double));
        if (!t)
                return -ENOMEM;
        struct vsock_exec_request req = { .command = (char *) "true" };
        for (int i = 0; i < n; i++) {
                struct vsock_call call = VSOCK_CALL_INIT;
                call.deadline_ns = vsock_deadline_in(30000);
                struct vsock_exec_result res = { 0 };
                int64_t t0 = vsock_now_ns();
                int r = vsock_exec_at(addr, &req, &call, &res);
                t[i] = ms_since(t0);
                if (r < 0) {
                        free(t);
                        return r;
                }
                vsock_exec_result_clear(&res);
        }
        qsort(t, (size_t) n, sizeof(double), cmp_double);
        *ret_median = t[n / 2];
        *ret_p90 = t[n * 9 / 10];
        free(t);
        return 0;
}

static int count_output(void *userdata, enum vsock_stream_id stream, const uint8_t *data, size_t len) {
        *(uint64_t *) userdata += len;
        return 0;
}

static int bench_stream(const char *addr, uint64_t bytes, double *ret_mibs) {
        char script[96];
        /* dd with 64 KiB writes: busybox head -c writes 4 KiB at a time,
         * which under TCG measures the syscalls rather than the agent. */
        snprintf(script, sizeof(script), "dd if=/dev/zero bs=65536 count=%llu 2>/dev/null",
                 (unsigned long long) (bytes / 65536));
        char *a[3];
        struct vsock_exec_request req = sh_request(script, a);
        uint64_t got = 0;
        struct vsock_exec_io io = VSOCK_EXEC_IO_INIT;
        io.on_output = count_output;
        io.userdata = &got;
        struct vsock_call call = VSOCK_CALL_INIT;
        call.deadline_ns = vsock_deadline_in(120000);
        struct vsock_exec_result res = { 0 };
        int64_t t0 = vsock_now_ns();
        int r = vsock_exec_stream_at(addr, &req, &io, &call, &res);
        double secs = ms_since(t0) / 1000;
        if (r < 0)
                return r;
        vsock_exec_result_clear(&res);
        if (got != bytes)
                return -EIO;
        *ret_mibs = (double) bytes / (1024.0 * 1024.0) / secs;
        return 0;
}

/* Raw transport baselines: no agent, just a connection, so the agent's
 * own cost shows next to the transport's. The server side answers 1000
 * 64-byte pings, then counts a one-way stream until EOF. */
struct raw_peer {
        vsock_listener *l;
        int accept_ms;
        int rc;
        uint64_t got;
};

static void *raw_server(void *arg) {
        struct raw_peer *p = arg;
        vsock_conn *c = NULL;
        p->rc = vsock_accept(p->l, p->accept_ms, &c);
        if (p->rc < 0)
                return NULL;
        vsock_conn_set_deadline(c, vsock_deadline_in(120000));
        static uint8_t buf[256 * 1024];
        for (int i = 0; i < 1000 && p->rc >= 0; i++) {
                p->rc = vsock_conn_read_full(c, buf, 64, NULL);
                if (p->rc >= 0)
                        p->rc = vsock_conn_write(c, buf, 64);
        }
        for (ssize_t n; p->rc >= 0 && (n = vsock_conn_read(c, buf, sizeof(buf))) != 0;) {
                if (n < 0)
                        p->rc = (int) n;
                else
                        p->got += (uint64_t) n;
        }
        vsock_conn_close(c);
        return NULL;
}

/* The client side: ping-pongs, then @bytes one way and EOF. */
static int raw_client(vsock_conn *c, uint64_t bytes, double *ret_rtt_us, double *ret_mibs) {
        vsock_conn_set_deadline(c, vsock_deadline_in(120000));
        uint8_t ping[64] = { 0 };
        int r = 0;
        int64_t t0 = vsock_now_ns();
        for (int i = 0; i < 1000 && r >= 0; i++) {
                r = vsock_conn_write(c, ping, sizeof(ping));
                if (r >= 0)
                        r = vsock_conn_read_full(c, ping, sizeof(ping), NULL);
        }
        *ret_rtt_us = ms_since(t0); /* ms for 1000 round trips = us each */
        static uint8_t chunk[256 * 1024];
        t0 = vsock_now_ns();
        for (uint64_t sent = 0; r >= 0 && sent < bytes; sent += sizeof(chunk))
                r = vsock_conn_write(c, chunk, sizeof(chunk));
        if (r >= 0)
                r = vsock_conn_shutdown_write(c);
        /* Until the server has read everything (it closes at EOF). */
        uint8_t one;
        if (r >= 0 && vsock_conn_read(c, &one, 1) < 0)
                r = -EIO;
        *ret_mibs = (double) bytes / (1024.0 * 1024.0) / (ms_since(t0) / 1000);
        return r < 0 ? r : 0;
}

static int listen_str(const char *addr, vsock_listener **ret) {
        struct vsock_addr la;
        int r = vsock_addr_parse(addr, 0, &la, NULL);
        return r < 0 ? r : vsock_listen_addr(&la, 4, 0600, ret);
}

static int bench_raw(const char *listen_addr, const char *dial_addr, uint64_t bytes, double *ret_rtt_us,
                     double *ret_mibs) {
        struct raw_peer p = { .accept_ms = 30000 };
        int r = listen_str(listen_addr, &p.l);
        if (r < 0)
                return r;
        pthread_t t;
        if (pthread_create(&t, NULL, raw_server, &p) != 0) {
                vsock_listener_close(p.l);
                return -EAGAIN;
        }
        vsock_conn *c = NULL;
        r = vsock_dial_str(dial_addr, 0, 10000, -1, &c);
        if (r >= 0) {
                r = raw_client(c, bytes, ret_rtt_us, ret_mibs);
                pthread_join(t, NULL);
                vsock_conn_close(c);
        } else {
                pthread_cancel(t);
                pthread_join(t, NULL);
        }
        vsock_listener_close(p.l);
        if (r >= 0 && p.rc < 0)
                r = p.rc;
        if (r >= 0 && p.got != bytes)
                r = -EIO;
        return r;
}

/* Exec latency and stream throughput of the agent at @addr. */
static int agent_figures(const char *addr, const char *name) {
        const int n = 100;
        double med, p90, mibs;
        int r = bench_latency(addr, n, &med, &p90);
        if (r < 0)
                return fail("latency over %s: %s", addr, vsock_strerror(r));
        r = bench_stream(addr, 64u << 20, &mibs);
        if (r < 0)
                return fail("stream over %s: %s", addr, vsock_strerror(r));
        printf("FIGURE %-5s exec latency (batch 'true', %d runs): median %.2f ms, p90 %.2f ms; "
               "stream throughput (64 MiB stdout, exec stream): %.1f MiB/s\n",
               name, n, med, p90, mibs);
        return 0;
}

static int cmd_bench(int argc, char **argv) {
        if (argc < 2)
                return 2;
        const uint64_t bytes = 64u << 20;
        for (int i = 0; i < 2; i++) {
                int r = agent_figures(argv[i], i == 0 ? "vsock" : "unix");
                if (r)
                        return r;
        }
        /* The same producer read through a local pipe, for scale. */
        FILE *p = popen("dd if=/dev/zero bs=65536 count=1024 2>/dev/null", "r");
        if (!p)
                return fail("popen: %m");
        static char pbuf[65536];
        uint64_t got = 0;
        int64_t t0 = vsock_now_ns();
        for (size_t k; (k = fread(pbuf, 1, sizeof(pbuf), p)) > 0;)
                got += k;
        double secs = ms_since(t0) / 1000;
        pclose(p);
        printf("FIGURE local the same 64 MiB producer through a plain pipe: %.1f MiB/s\n",
               (double) got / (1024.0 * 1024.0) / secs);

        /* The transports alone, for scale. */
        static const char *const raw[][3] = {
                { "vsock", "vsock::47123", "vsock:1:47123" },
                { "unix", "unix:/run/vmcheck-raw.sock", "unix:/run/vmcheck-raw.sock" },
        };
        for (size_t i = 0; i < 2; i++) {
                double rtt, mibs;
                int r = bench_raw(raw[i][1], raw[i][2], bytes, &rtt, &mibs);
                if (r < 0)
                        return fail("raw %s baseline: %s", raw[i][0], vsock_strerror(r));
                printf("FIGURE %-5s raw socket, no agent: 64-byte round trip %.0f us; one-way 64 MiB: %.1f MiB/s\n",
                       raw[i][0], rtt, mibs);
        }
        return 0;
}

/* The agent's figures at ADDR under the name LABEL (the host measuring
 * through vsock-vhost: vsock-mux:UDS). */
static int cmd_figures(int argc, char **argv) {
        if (argc < 2)
                return 2;
        return agent_figures(argv[0], argv[1]);
}

/* The server half of the raw figures on LISTEN_ADDR, for one client. */
static int cmd_raw_serve(int argc, char **argv) {
        if (argc < 1)
                return 2;
        struct raw_peer p = { .accept_ms = 600000 };
        int r = listen_str(argv[0], &p.l);
        if (r < 0)
                return fail("listen %s: %s", argv[0], vsock_strerror(r));
        raw_server(&p);
        vsock_listener_close(p.l);
        if (p.rc < 0)
                return fail("raw server on %s: %s", argv[0], vsock_strerror(p.rc));
        printf("raw server on %s: %llu bytes after the pings\n", argv[0], (unsigned long long) p.got);
        return 0;
}

/* The client half against a raw server at DIAL_ADDR, as figure LABEL. */
static int cmd_raw_dial(int argc, char **argv) {
        if (argc < 2)
                return 2;
        vsock_conn *c = NULL;
        int r = vsock_dial_str(argv[0], 0, 10000, -1, &c);
        if (r < 0)
                return fail("dial %s: %s", argv[0], vsock_strerror(r));
        double rtt, mibs;
        r = raw_client(c, 64u << 20, &rtt, &mibs);
        vsock_conn_close(c);
        if (r < 0)
                return fail("raw stream to %s: %s", argv[0], vsock_strerror(r));
        printf("FIGURE %s raw socket, no agent: 64-byte round trip %.0f us; one-way 64 MiB: %.1f MiB/s\n", argv[1],
               rtt, mibs);
        return 0;
}

int main(int argc, char **argv) {
        static const struct {
                const char *name;
                int (*fn)(int, char **);
                const char *usage;
        } cmds[] = {
                { "cid", cmd_cid, "" },
                { "ready", cmd_ready, "ADDR" },
                { "refused", cmd_refused, "ADDR" },
                { "cancel", cmd_cancel, "ADDR" },
                { "signal", cmd_signal, "ADDR" },
                { "tty", cmd_tty, "ADDR" },
                { "stdin", cmd_stdin, "ADDR" },
                { "files", cmd_files, "ADDR" },
                { "forward", cmd_forward, "ADDR TCP_PORT" },
                { "concurrent", cmd_concurrent, "ADDR N" },
                { "bench", cmd_bench, "VSOCK_ADDR UNIX_ADDR" },
                { "figures", cmd_figures, "ADDR LABEL" },
                { "raw-serve", cmd_raw_serve, "LISTEN_ADDR" },
                { "raw-dial", cmd_raw_dial, "DIAL_ADDR LABEL" },
                { "echo", cmd_echo, "ADDR" },
                { "dial-refused", cmd_dial_refused, "ADDR" },
        };
        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        if (argc >= 2)
                for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
                        if (strcmp(argv[1], cmds[i].name) == 0) {
                                int r = cmds[i].fn(argc - 2, argv + 2);
                                if (r == 2)
                                        fprintf(stderr, "usage: %s %s %s\n", prog, cmds[i].name, cmds[i].usage);
                                return r;
                        }
        fprintf(stderr, "usage: %s COMMAND ARGS\ncommands:", prog);
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
                fprintf(stderr, " %s", cmds[i].name);
        fputc('\n', stderr);
        return 2;
}
