/* launch_run(): from an exec request's bytes to a running command, without
 * the event loop: argv (shell or not), environment, user, stdio (pipes,
 * /dev/null, a terminal), the request's stdin handed back, and one reason
 * with 127 or 126 for every way a command cannot start. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <vsock/msg.h>

#include "agent/exec/launch.h"
#include "common/io.h"
#include "common/macro.h"
#include "lib/msg-internal.h"

extern char **environ;

/* Every close() of the code under test goes through here (linked with
 * --wrap=close): closing an fd that is not open means a double close,
 * which in the agent closes another thread's fd. */
int __real_close(int fd);
int __wrap_close(int fd);
static int bad_closes;

int __wrap_close(int fd) {
        int r = __real_close(fd);
        if (r < 0 && errno == EBADF)
                bad_closes++;
        return r;
}

static char passwd[] = "/tmp/test-launch-passwd-XXXXXX";
static char group[] = "/tmp/test-launch-group-XXXXXX";

static struct launch_config config(void) {
        return (struct launch_config) { .base_env = environ, .passwd = passwd, .group = group };
}

static uint8_t *encode(const struct vsock_exec_request *req, bool tty, size_t *len) {
        uint8_t *p;
        int r = tty ? vsock_exec_tty_request_encode(req, &p, len) : vsock_exec_request_encode(req, &p, len);
        assert_int_equal(r, 0);
        return p;
}

/* Launch, read stdout to EOF into @out, reap; returns the exit status. */
static int run(const struct vsock_exec_request *req, struct launch_mode mode, char *out, size_t size) {
        size_t len;
        uint8_t *p = encode(req, mode.tty, &len);
        struct launch_config cfg = config();
        struct launch_result r;
        int rc = launch_run(p, len, mode, &cfg, NULL, &r);
        if (rc < 0)
                fail_msg("launch: %s (%d)", r.error ? r.error : "?", r.exit_code);
        if (r.in_fd >= 0 && r.stdin_len > 0)
                assert_int_equal(io_write_all(r.in_fd, r.stdin_data, r.stdin_len, 0, -1), 0);
        if (!mode.tty)
                r.in_fd = safe_close(r.in_fd); /* EOF for the command */
        assert_int_equal(fd_set_nonblock(r.out_fd, 0), 0);
        ssize_t n = io_read_full(r.out_fd, out, size - 1, deadline_from_ms(20000), -1);
        out[n > 0 ? n : 0] = '\0';
        siginfo_t si;
        assert_int_equal(waitid(P_PIDFD, (id_t) r.pidfd, &si, WEXITED), 0);
        launch_result_clear(&r);
        launch_result_clear(&r); /* idempotent */
        assert_int_equal(bad_closes, 0);
        return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
}

/* The request must not start: @code and exactly @reason. */
static void expect_failure(const void *payload, size_t len, struct launch_mode mode, int code, const char *reason) {
        uint8_t *p = malloc(len ? len : 1);
        assert_non_null(p);
        if (len)
                memcpy(p, payload, len);
        struct launch_config cfg = config();
        struct launch_result r;
        int rc = launch_run(p, len, mode, &cfg, NULL, &r);
        assert_true(rc < 0);
        assert_int_equal(r.exit_code, code);
        assert_non_null(r.error);
        if (strcmp(r.error, reason) != 0)
                fail_msg("reason \"%s\", want \"%s\"", r.error, reason);
        /* Nothing of it stays open. */
        assert_int_equal(r.in_fd, -1);
        assert_int_equal(r.out_fd, -1);
        assert_int_equal(r.err_fd, -1);
        assert_int_equal(r.master, -1);
        launch_result_clear(&r);
        assert_int_equal(bad_closes, 0);
}

static void expect_request_failure(const struct vsock_exec_request *req, int code, const char *reason) {
        size_t len;
        uint8_t *p = encode(req, false, &len);
        expect_failure(p, len, (struct launch_mode) { 0 }, code, reason);
        free(p);
}

static int setup(void **state) {
        int fd = mkstemp(passwd);
        if (fd < 0 || write(fd, "alice:x:1234:1234:Alice:/home/alice:/bin/sh\n", 44) != 44)
                return -1;
        close(fd);
        fd = mkstemp(group);
        if (fd < 0 || write(fd, "staff:x:50:alice\n", 17) != 17)
                return -1;
        close(fd);
        return 0;
}

static int teardown(void **state) {
        unlink(passwd);
        unlink(group);
        return 0;
}

static void test_shell_and_argv(void **state) {
        char out[256];
        struct vsock_exec_request req = { .command = "echo \"$0\" $1; exit 3" };
        assert_int_equal(run(&req, (struct launch_mode) { 0 }, out, sizeof out), 3);
        assert_string_equal(out, "/bin/sh\n");
        char *args[] = { "%s|%s|", "a b", "$X" };
        req = (struct vsock_exec_request) { .command = "printf", .args = args, .n_args = 3 };
        assert_int_equal(run(&req, (struct launch_mode) { 0 }, out, sizeof out), 0);
        assert_string_equal(out, "a b|$X|");
}

static void test_env_and_cwd(void **state) {
        char out[512];
        struct vsock_env env[] = { { "FOO", "bar" } };
        struct vsock_exec_request req = { .command = "echo $FOO; pwd; echo $PATH", .env = env, .n_env = 1,
                                          .working_dir = "/tmp" };
        assert_int_equal(run(&req, (struct launch_mode) { 0 }, out, sizeof out), 0);
        char want[512];
        const char *path = getenv("PATH");
        snprintf(want, sizeof want, "bar\n/tmp\n%s\n",
                 path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        assert_string_equal(out, want);
}

static void test_stdin(void **state) {
        char out[256];
        /* Batch: the request's stdin comes back to be written. */
        struct vsock_exec_request req = { .command = "cat", .stdin_data = { (uint8_t *) "from request", 12, true } };
        assert_int_equal(run(&req, (struct launch_mode) { 0 }, out, sizeof out), 0);
        assert_string_equal(out, "from request");
        /* Without stdin in the request: /dev/null. */
        req = (struct vsock_exec_request) { .command = "cat; echo end" };
        assert_int_equal(run(&req, (struct launch_mode) { 0 }, out, sizeof out), 0);
        assert_string_equal(out, "end\n");
        /* Stdin frames to come: a pipe even now. */
        req = (struct vsock_exec_request) { .command = "test -p /dev/stdin && echo pipe" };
        assert_int_equal(run(&req, (struct launch_mode) { .stdin_frames = true }, out, sizeof out), 0);
        assert_string_equal(out, "pipe\n");
}

static void test_tty(void **state) {
        struct vsock_exec_request req = { .command = "stty size; tty", .rows = 33, .cols = 99 };
        size_t len;
        uint8_t *p = encode(&req, true, &len);
        struct launch_config cfg = config();
        struct launch_result r;
        assert_int_equal(launch_run(p, len, (struct launch_mode) { .tty = true, .stdin_frames = true }, &cfg, NULL, &r),
                         0);
        assert_true(r.master >= 0 && r.in_fd >= 0 && r.out_fd >= 0);
        assert_int_equal(r.err_fd, -1);
        char out[512] = "";
        size_t have = 0;
        while (!strstr(out, "/dev/pts/") || !strchr(strstr(out, "/dev/pts/"), '\n')) {
                assert_int_equal(io_wait(r.out_fd, POLLIN, deadline_from_ms(20000), -1), 0);
                ssize_t n = read(r.out_fd, out + have, sizeof out - 1 - have);
                assert_true(n > 0);
                have += (size_t) n;
                out[have] = '\0';
        }
        assert_non_null(strstr(out, "33 99"));
        siginfo_t si;
        assert_int_equal(waitid(P_PIDFD, (id_t) r.pidfd, &si, WEXITED), 0);
        launch_result_clear(&r);
        /* The terminal's slave was the command's stdin, stdout and stderr:
         * closed once. */
        assert_int_equal(bad_closes, 0);
}

static void test_failures(void **state) {
        char *args[] = { "x" };
        struct vsock_exec_request req = { .command = "no-such-command-xyz", .args = args, .n_args = 1 };
        expect_request_failure(&req, 127, "exec: \"no-such-command-xyz\": executable file not found in $PATH");
        req.command = "/etc/passwd";
        expect_request_failure(&req, 126, "exec /etc/passwd: permission denied");
        req = (struct vsock_exec_request) { .command = "true", .working_dir = "/no/such/dir" };
        expect_request_failure(&req, 127, "chdir /no/such/dir: no such file or directory");
        req = (struct vsock_exec_request) { .command = "true", .user = "bob" };
        expect_request_failure(&req, 127, "unknown user \"bob\"");
        req = (struct vsock_exec_request) { .command = "true", .user = "alice:nogroup" };
        expect_request_failure(&req, 127, "unknown group \"nogroup\"");
        req = (struct vsock_exec_request) { .command = "true", .user = "a:b:c" };
        expect_request_failure(&req, 126, "invalid user spec \"a:b:c\"");
        struct vsock_env bad[] = { { "A=B", "x" } };
        req = (struct vsock_exec_request) { .command = "true", .env = bad, .n_env = 1 };
        expect_request_failure(&req, 126, "invalid environment variable name");

        size_t big = 3u << 20;
        char *huge = malloc(big + 1);
        assert_non_null(huge);
        memset(huge, 'x', big);
        huge[big] = '\0';
        req = (struct vsock_exec_request) { .command = huge };
        expect_request_failure(&req, 126, "request too large: arguments and environment exceed 2 MiB");
        free(huge);

        static const char junk[] = "{\"command\":";
        expect_failure(junk, sizeof junk - 1, (struct launch_mode) { 0 }, 126,
                       "invalid exec request: unexpected end of JSON input");
        expect_failure(NULL, 0, (struct launch_mode) { 0 }, 126, "invalid exec request: unexpected end of JSON input");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_shell_and_argv), cmocka_unit_test(test_env_and_cwd),
                cmocka_unit_test(test_stdin),          cmocka_unit_test(test_tty),
                cmocka_unit_test(test_failures),
        };
        return cmocka_run_group_tests_name("launch", tests, setup, teardown);
}
