/* Init mode without being PID 1: command-line parsing, the option mapping,
 * the mount table check, the signal mapping and orphan reaping (which works
 * on any parent's children). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/init/init.h"

static void test_cmdline_get(void **state) {
        char *v = NULL;
        assert_int_equal(init_cmdline_get("console=ttyS0 hostname=guest1 quiet", "hostname", &v), 1);
        assert_string_equal(v, "guest1");
        free(v);

        /* Later words win, as in the kernel. */
        assert_int_equal(init_cmdline_get("hostname=a hostname=b\n", "hostname", &v), 1);
        assert_string_equal(v, "b");
        free(v);

        assert_int_equal(init_cmdline_get("hostname=\"my host\" x=1", "hostname", &v), 1);
        assert_string_equal(v, "my host");
        free(v);

        assert_int_equal(init_cmdline_get("hostname=", "hostname", &v), 1);
        assert_string_equal(v, "");
        free(v);

        v = (char *) "untouched";
        assert_int_equal(init_cmdline_get("hostnamex=a xhostname=b hostname", "hostname", &v), 0);
        assert_int_equal(init_cmdline_get("", "hostname", &v), 0);
        assert_int_equal(init_cmdline_get("   \n", "hostname", &v), 0);
        /* Words after "--" are init's argv, not kernel parameters. */
        assert_int_equal(init_cmdline_get("quiet -- hostname=a", "hostname", &v), 0);
        assert_string_equal(v, "untouched");
}

static void assert_argv(char **argv, int argc, const char *const *want, int nwant) {
        assert_int_equal(argc, nwant);
        for (int i = 0; i < nwant; i++)
                assert_string_equal(argv[i], want[i]);
        assert_null(argv[argc]);
}

static void test_options_mapping(void **state) {
        char **argv = NULL;
        int argc = -1;
        assert_int_equal(init_cmdline_options(
                                 "console=ttyS0 vsock.listen=vsock:5000 quiet vsock.ready=vsock:5002 "
                                 "vsock.allow_cid=1,3 vsock.allow_cid=7 vsock.privileged=1 vsock.pid_ns=yes panic=-1\n",
                                 &argv, &argc),
                         0);
        static const char *const want[] = {
                "--listen", "vsock:5000", "--ready", "vsock:5002", "--allow-cid", "1",
                "--allow-cid", "3", "--allow-cid", "7", "--privileged", "--pid-ns",
        };
        assert_argv(argv, argc, want, (int) (sizeof(want) / sizeof(want[0])));
        init_strv_free(argv);
}

static void test_options_edge_cases(void **state) {
        char **argv = NULL;
        int argc = -1;

        assert_int_equal(init_cmdline_options("console=ttyS0 quiet", &argv, &argc), 0);
        assert_argv(argv, argc, NULL, 0);
        init_strv_free(argv);

        assert_int_equal(init_cmdline_options(NULL, &argv, &argc), 0);
        assert_argv(argv, argc, NULL, 0);
        init_strv_free(argv);

        /* Empty list items are skipped; quotes are removed; privileged=0,
         * unknown vsock.* words and words after "--" add nothing. */
        assert_int_equal(init_cmdline_options("vsock.allow_cid=,5,, vsock.privileged=off vsock.pid_ns=0 "
                                              "vsock.listen=\"unix:/run/a b.sock\" vsock.debug=1 "
                                              "-- vsock.privileged=1",
                                              &argv, &argc),
                         0);
        static const char *const want1[] = { "--allow-cid", "5", "--listen", "unix:/run/a b.sock" };
        assert_argv(argv, argc, want1, 4);
        init_strv_free(argv);

        /* A bare flag counts as on. */
        assert_int_equal(init_cmdline_options("vsock.privileged", &argv, &argc), 0);
        static const char *const want2[] = { "--privileged" };
        assert_argv(argv, argc, want2, 1);
        init_strv_free(argv);

        /* Errors leave the out-parameters alone. */
        argv = NULL;
        argc = -1;
        assert_int_equal(init_cmdline_options("vsock.privileged=maybe", &argv, &argc), -EINVAL);
        assert_int_equal(init_cmdline_options("vsock.pid_ns=2", &argv, &argc), -EINVAL);
        assert_int_equal(init_cmdline_options("vsock.listen=1 vsock.ready=", &argv, &argc), -EINVAL);
        assert_int_equal(init_cmdline_options("vsock.listen", &argv, &argc), -EINVAL);
        assert_int_equal(init_cmdline_options("vsock.allow_cid=", &argv, &argc), -EINVAL);
        assert_null(argv);
        assert_int_equal(argc, -1);

        init_strv_free(NULL);
}

/* A mountinfo as a minimal initramfs guest shows it, with an escaped space
 * in one mount point and no final newline. */
static const char fake_mountinfo[] =
        "1 1 0:2 / / rw - rootfs rootfs rw\n"
        "20 1 0:19 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
        "21 1 0:20 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw\n"
        "22 1 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw,size=241280k,mode=755\n"
        "30 22 0:21 / /dev/pts rw,nosuid,noexec - devpts devpts rw,gid=5,mode=620\n"
        "31 1 0:22 / /mnt/my\\040disk rw - tmpfs tmpfs rw\n"
        "32 1 0:23 /sub /srv/bind\\134x rw shared:4 - ext4 /dev/vda rw";

static void test_mountinfo(void **state) {
        assert_true(init_mountinfo_has(fake_mountinfo, "/"));
        assert_true(init_mountinfo_has(fake_mountinfo, "/proc"));
        assert_true(init_mountinfo_has(fake_mountinfo, "/sys"));
        assert_true(init_mountinfo_has(fake_mountinfo, "/dev"));
        assert_true(init_mountinfo_has(fake_mountinfo, "/dev/pts"));
        assert_true(init_mountinfo_has(fake_mountinfo, "/mnt/my disk"));
        assert_true(init_mountinfo_has(fake_mountinfo, "/srv/bind\\x"));

        assert_false(init_mountinfo_has(fake_mountinfo, "/dev/shm"));
        assert_false(init_mountinfo_has(fake_mountinfo, "/tmp"));
        assert_false(init_mountinfo_has(fake_mountinfo, "/run"));
        /* Prefixes and root paths are not mount points. */
        assert_false(init_mountinfo_has(fake_mountinfo, "/de"));
        assert_false(init_mountinfo_has(fake_mountinfo, "/mnt/my"));
        assert_false(init_mountinfo_has(fake_mountinfo, "/sub"));
        assert_false(init_mountinfo_has(fake_mountinfo, "/srv/bind"));
        assert_false(init_mountinfo_has("", "/"));
        assert_false(init_mountinfo_has("garbage line\n\n", "/"));
}

static void test_real_mountinfo(void **state) {
        /* Whatever runs the tests has / and /proc mounted. */
        FILE *f = fopen("/proc/self/mountinfo", "re");
        assert_non_null(f);
        static char text[1 << 16];
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        assert_true(init_mountinfo_has(text, "/"));
        assert_true(init_mountinfo_has(text, "/proc"));
}

static void test_signal_actions(void **state) {
        assert_int_equal(init_signal_action(SIGTERM), INIT_ACTION_POWEROFF);
        assert_int_equal(init_signal_action(SIGUSR2), INIT_ACTION_POWEROFF);
        assert_int_equal(init_signal_action(SIGUSR1), INIT_ACTION_POWEROFF);
        assert_int_equal(init_signal_action(SIGRTMIN + 4), INIT_ACTION_POWEROFF);
        assert_int_equal(init_signal_action(SIGINT), INIT_ACTION_REBOOT);
        assert_int_equal(init_signal_action(SIGRTMIN + 5), INIT_ACTION_REBOOT);
        assert_int_equal(init_signal_action(SIGCHLD), INIT_ACTION_NONE);
        assert_int_equal(init_signal_action(SIGHUP), INIT_ACTION_NONE);

        sigset_t m;
        sigemptyset(&m);
        init_signal_mask_add(&m);
        assert_true(sigismember(&m, SIGCHLD));
        assert_true(sigismember(&m, SIGTERM));
        assert_true(sigismember(&m, SIGINT));
        assert_true(sigismember(&m, SIGRTMIN + 4));
        assert_false(sigismember(&m, SIGHUP));
}

static pid_t exiting_child(int code) {
        pid_t p = fork();
        assert_true(p >= 0);
        if (p == 0)
                _exit(code);
        /* Wait until it is a zombie, without reaping it. */
        siginfo_t si = { 0 };
        assert_int_equal(waitid(P_PID, (id_t) p, &si, WEXITED | WNOWAIT), 0);
        return p;
}

static bool is_zombie_child(pid_t p) {
        siginfo_t si = { 0 };
        return waitid(P_PID, (id_t) p, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == p;
}

static bool own_is(pid_t pid, void *userdata) {
        return pid == *(pid_t *) userdata;
}

static void test_reap_orphans(void **state) {
        /* Children join the parent's list at the tail, and waitid(P_ALL)
         * walks it in order: a, then own, then c. */
        pid_t a = exiting_child(1);
        pid_t own = exiting_child(2);
        pid_t c = exiting_child(3);

        init_reap_orphans(own_is, &own);
        assert_false(is_zombie_child(a));
        assert_true(is_zombie_child(own)); /* never reaped behind our back */
        assert_true(is_zombie_child(c));   /* waits for the next pass */

        /* The agent reaps its own child, then calls again. */
        siginfo_t si = { 0 };
        assert_int_equal(waitid(P_PID, (id_t) own, &si, WEXITED), 0);
        assert_int_equal(si.si_status, 2);
        init_reap_orphans(own_is, &own);
        assert_false(is_zombie_child(c));

        /* No children at all, and a NULL predicate: both fine. */
        init_reap_orphans(NULL, NULL);
        pid_t d = exiting_child(0);
        init_reap_orphans(NULL, NULL);
        assert_false(is_zombie_child(d));
        errno = 0;
        assert_int_equal(waitid(P_ALL, 0, &si, WEXITED | WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
}

static void test_reap_leaves_running_children(void **state) {
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t running = fork();
        assert_true(running >= 0);
        if (running == 0) {
                char b;
                close(pfd[1]);
                (void) read(pfd[0], &b, 1);
                _exit(0);
        }
        close(pfd[0]);
        pid_t z = exiting_child(0);
        init_reap_orphans(NULL, NULL);
        assert_false(is_zombie_child(z));
        /* Still running: not reaped, still our child. */
        siginfo_t si = { 0 };
        assert_int_equal(waitid(P_PID, (id_t) running, &si, WEXITED | WNOHANG | WNOWAIT), 0);
        assert_int_equal(si.si_pid, 0);
        close(pfd[1]);
        assert_int_equal(waitid(P_PID, (id_t) running, &si, WEXITED), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cmdline_get),
                cmocka_unit_test(test_options_mapping),
                cmocka_unit_test(test_options_edge_cases),
                cmocka_unit_test(test_mountinfo),
                cmocka_unit_test(test_real_mountinfo),
                cmocka_unit_test(test_signal_actions),
                cmocka_unit_test(test_reap_orphans),
                cmocka_unit_test(test_reap_leaves_running_children),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
