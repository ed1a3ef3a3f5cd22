#include <errno.h>
#include <grp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/exec/user.h"

static char dir[] = "/tmp/test-user-XXXXXX";
static char passwd_path[64], group_path[64], missing_path[64];

static const char passwd_text[] =
        "root:x:0:0:root:/root:/bin/bash\n"
        "# a comment:x:5:5::/:/bin/sh\n"
        "\n"
        "broken line without colons\n"
        "short:x:1:1\n"
        "toomany:x:1:1:a:b:c:d\n"
        "badnum:x:12a:1::/x:/bin/sh\n"
        "neg:x:-3:1::/x:/bin/sh\n"
        "huge:x:4294967295:1::/x:/bin/sh\n"
        "+nis::::::\n"
        ":x:7:7::/empty:/bin/sh\n"
        "alice:x:1000:1000:Alice:/home/alice:/bin/zsh\r\n"
        "bob:x:1001:100::/home/bob:/bin/sh\n"
        "dup:x:1000:5::/home/dup:/bin/sh\n"
        "noshell:x:1002:1002:::\n"
        "4242:x:3000:3000::/home/numeric:/bin/sh\n";

static const char group_text[] =
        "root:x:0:\n"
        "users:x:100:alice,bob\n"
        "# comment:x:9:alice\n"
        "wheel:x:10:carol,alice\n"
        "bad:x:zz:alice\n"
        "short:x:11\n"
        "alice:x:1000:\n"
        "devs:x:2000:bob,alicex,xalice\n"
        "audio:x:29:alice\n"
        "audio2:x:29:alice\n";

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

static int setup(void **state) {
        if (!mkdtemp(dir))
                return -1;
        snprintf(passwd_path, sizeof(passwd_path), "%s/passwd", dir);
        snprintf(group_path, sizeof(group_path), "%s/group", dir);
        snprintf(missing_path, sizeof(missing_path), "%s/missing", dir);
        write_file(passwd_path, passwd_text);
        write_file(group_path, group_text);
        return 0;
}

static int teardown(void **state) {
        unlink(passwd_path);
        unlink(group_path);
        rmdir(dir);
        return 0;
}

static void resolve_ok(const char *spec, struct user_spec *u) {
        char *err = NULL;
        int r = user_resolve(spec, passwd_path, group_path, u, &err);
        if (r < 0)
                fail_msg("resolve \"%s\": %d %s", spec, r, err ? err : "(no message)");
        assert_null(err);
}

static void resolve_err(const char *spec, const char *pw, const char *gr, int want, const char *msg) {
        struct user_spec u = {};
        char *err = NULL;
        assert_int_equal(user_resolve(spec, pw, gr, &u, &err), want);
        assert_non_null(err);
        if (strcmp(err, msg) != 0)
                fail_msg("spec \"%s\": got \"%s\", want \"%s\"", spec, err, msg);
        assert_null(u.name);
        assert_null(u.groups);
        free(err);
}

static void assert_groups(const struct user_spec *u, const gid_t *want, size_t n) {
        assert_int_equal(u->n_groups, n);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(u->groups[i], want[i]);
}

static void test_name(void **state) {
        struct user_spec u = {};
        resolve_ok("alice", &u);
        assert_int_equal(u.uid, 1000);
        assert_int_equal(u.gid, 1000);
        assert_string_equal(u.name, "alice");
        assert_string_equal(u.home, "/home/alice");
        assert_string_equal(u.shell, "/bin/zsh"); /* CRLF line ending stripped */
        /* users, wheel, audio (29 listed twice: deduplicated), primary;
         * "alicex"/"xalice" are not "alice". */
        assert_groups(&u, (const gid_t[]) { 10, 29, 100, 1000 }, 4);
        user_spec_clear(&u);
        user_spec_clear(&u); /* idempotent */
}

static void test_name_group(void **state) {
        struct user_spec u = {};
        resolve_ok("bob:devs", &u);
        assert_int_equal(u.uid, 1001);
        assert_int_equal(u.gid, 2000);
        assert_string_equal(u.name, "bob");
        /* The explicit group replaces the passwd gid (100), but bob is a
         * listed member of users (100) and devs. */
        assert_groups(&u, (const gid_t[]) { 100, 2000 }, 2);
        user_spec_clear(&u);

        resolve_ok("bob:55", &u);
        assert_int_equal(u.gid, 55);
        assert_groups(&u, (const gid_t[]) { 55, 100, 2000 }, 3);
        user_spec_clear(&u);
}

static void test_numeric_known(void **state) {
        struct user_spec u = {};
        /* First entry with uid 1000 wins (alice, not dup). */
        resolve_ok("1000", &u);
        assert_int_equal(u.uid, 1000);
        assert_int_equal(u.gid, 1000);
        assert_string_equal(u.name, "alice");
        assert_string_equal(u.home, "/home/alice");
        assert_groups(&u, (const gid_t[]) { 10, 29, 100, 1000 }, 4);
        user_spec_clear(&u);

        resolve_ok("1000:1000", &u);
        assert_int_equal(u.gid, 1000);
        user_spec_clear(&u);

        resolve_ok("1001:wheel", &u);
        assert_int_equal(u.uid, 1001);
        assert_int_equal(u.gid, 10);
        assert_string_equal(u.name, "bob");
        assert_groups(&u, (const gid_t[]) { 10, 100, 2000 }, 3);
        user_spec_clear(&u);

        resolve_ok("0", &u);
        assert_int_equal(u.uid, 0);
        assert_int_equal(u.gid, 0);
        assert_string_equal(u.name, "root");
        assert_string_equal(u.home, "/root");
        assert_groups(&u, (const gid_t[]) { 0 }, 1);
        user_spec_clear(&u);

        /* Empty home and shell fall back to defaults. */
        resolve_ok("noshell", &u);
        assert_string_equal(u.home, "/");
        assert_string_equal(u.shell, "/bin/sh");
        user_spec_clear(&u);
}

static void test_numeric_unknown(void **state) {
        struct user_spec u = {};
        /* Unknown uid: gid = uid (never 0), name = the number, home "/". */
        resolve_ok("5555", &u);
        assert_int_equal(u.uid, 5555);
        assert_int_equal(u.gid, 5555);
        assert_string_equal(u.name, "5555");
        assert_string_equal(u.home, "/");
        assert_string_equal(u.shell, "/bin/sh");
        assert_groups(&u, (const gid_t[]) { 5555 }, 1);
        user_spec_clear(&u);

        resolve_ok("5555:7", &u);
        assert_int_equal(u.gid, 7);
        assert_groups(&u, (const gid_t[]) { 7 }, 1);
        user_spec_clear(&u);

        resolve_ok("5555:audio", &u);
        assert_int_equal(u.gid, 29);
        user_spec_clear(&u);

        /* A digits-only user part is a uid even if a name "4242" exists. */
        resolve_ok("4242", &u);
        assert_int_equal(u.uid, 4242);
        assert_string_equal(u.home, "/");
        user_spec_clear(&u);

        /* Numeric specs work without any passwd/group file. */
        char *err = NULL;
        assert_int_equal(user_resolve("1234:99", missing_path, missing_path, &u, &err), 0);
        assert_null(err);
        assert_int_equal(u.uid, 1234);
        assert_int_equal(u.gid, 99);
        assert_groups(&u, (const gid_t[]) { 99 }, 1);
        user_spec_clear(&u);
}

static void test_errors(void **state) {
        resolve_err("carol", passwd_path, group_path, -ENOENT, "unknown user \"carol\"");
        resolve_err("alice:nogroup", passwd_path, group_path, -ENOENT, "unknown group \"nogroup\"");
        resolve_err("1000:nogroup", passwd_path, group_path, -ENOENT, "unknown group \"nogroup\"");
        resolve_err("", passwd_path, group_path, -EINVAL, "empty user spec");
        resolve_err(":", passwd_path, group_path, -EINVAL, "invalid user spec \":\"");
        resolve_err(":100", passwd_path, group_path, -EINVAL, "invalid user spec \":100\"");
        resolve_err("alice:", passwd_path, group_path, -EINVAL, "invalid user spec \"alice:\"");
        resolve_err("a:b:c", passwd_path, group_path, -EINVAL, "invalid user spec \"a:b:c\"");
        resolve_err("4294967295", passwd_path, group_path, -EINVAL, "invalid uid \"4294967295\"");
        resolve_err("99999999999999999999", passwd_path, group_path, -EINVAL,
                    "invalid uid \"99999999999999999999\"");
        resolve_err("1:4294967295", passwd_path, group_path, -EINVAL, "invalid gid \"4294967295\"");
        /* Malformed passwd lines never match. */
        resolve_err("badnum", passwd_path, group_path, -ENOENT, "unknown user \"badnum\"");
        resolve_err("short", passwd_path, group_path, -ENOENT, "unknown user \"short\"");
        resolve_err("toomany", passwd_path, group_path, -ENOENT, "unknown user \"toomany\"");
        resolve_err("huge", passwd_path, group_path, -ENOENT, "unknown user \"huge\"");
        resolve_err("+nis", passwd_path, group_path, -ENOENT, "unknown user \"+nis\"");
        resolve_err("# a comment", passwd_path, group_path, -ENOENT, "unknown user \"# a comment\"");
        resolve_err("-3", passwd_path, group_path, -ENOENT, "unknown user \"-3\"");
        resolve_err("alice:bad", passwd_path, group_path, -ENOENT, "unknown group \"bad\"");
        /* A missing file is named in the message. */
        char want[256];
        snprintf(want, sizeof(want), "unknown user \"alice\" (open %s: no such file or directory)", missing_path);
        resolve_err("alice", missing_path, group_path, -ENOENT, want);
        snprintf(want, sizeof(want), "unknown group \"users\" (open %s: no such file or directory)", missing_path);
        resolve_err("alice:users", passwd_path, missing_path, -ENOENT, want);

        /* A huge spec gives a bounded message. */
        char big[4096];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        struct user_spec u = {};
        char *err = NULL;
        assert_int_equal(user_resolve(big, passwd_path, group_path, &u, &err), -ENOENT);
        assert_non_null(err);
        assert_true(strlen(err) < 200);
        free(err);
}

static void test_missing_group_file(void **state) {
        /* No group file: a named user still resolves, with its primary gid. */
        struct user_spec u = {};
        char *err = NULL;
        assert_int_equal(user_resolve("alice", passwd_path, missing_path, &u, &err), 0);
        assert_null(err);
        assert_groups(&u, (const gid_t[]) { 1000 }, 1);
        user_spec_clear(&u);
}

static void test_long_lines(void **state) {
        char path[96];
        snprintf(path, sizeof(path), "%s/passwd-long", dir);
        size_t n = 1 << 20;
        char *text = malloc(n + 256);
        assert_non_null(text);
        /* A 1 MiB garbage line, a line with a 1 MiB gecos, then a user. */
        memset(text, 'g', n);
        size_t off = n;
        off += (size_t) sprintf(text + off, "\nlong:x:77:77:");
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(text, 1, off, f), off);
        memset(text, 'c', n);
        assert_int_equal(fwrite(text, 1, n, f), n);
        fputs(":/home/long:/bin/sh\nafter:x:78:78::/a:/bin/sh", f); /* no final newline */
        /* A line with an embedded NUL is skipped. */
        static const char nul_line[] = "\nnul\0x:x:79:79::/n:/bin/sh\n";
        assert_int_equal(fwrite(nul_line, 1, sizeof(nul_line) - 1, f), sizeof(nul_line) - 1);
        assert_int_equal(fclose(f), 0);
        free(text);

        struct user_spec u = {};
        char *err = NULL;
        assert_int_equal(user_resolve("long", path, group_path, &u, &err), 0);
        assert_int_equal(u.uid, 77);
        assert_string_equal(u.home, "/home/long");
        user_spec_clear(&u);
        assert_int_equal(user_resolve("after", path, group_path, &u, &err), 0);
        assert_int_equal(u.uid, 78);
        user_spec_clear(&u);
        assert_int_equal(user_resolve("nul", path, group_path, &u, &err), -ENOENT);
        free(err);
        err = NULL;
        /* The numeric lookup must not match the NUL line either. */
        assert_int_equal(user_resolve("79", path, group_path, &u, &err), 0);
        assert_string_equal(u.name, "79");
        user_spec_clear(&u);
        unlink(path);
}

static void test_switch_child(void **state) {
        if (getuid() != 0)
                skip();
        struct user_spec u = {};
        resolve_ok("alice", &u);

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (user_switch_child(&u) < 0)
                        _exit(10);
                if (getuid() != 1000 || geteuid() != 1000)
                        _exit(11);
                if (getgid() != 1000 || getegid() != 1000)
                        _exit(12);
                gid_t g[16];
                int n = getgroups(16, g);
                if (n != 4 || g[0] != 10 || g[1] != 29 || g[2] != 100 || g[3] != 1000)
                        _exit(13);
                uid_t r, e, s;
                if (getresuid(&r, &e, &s) < 0 || s != 1000)
                        _exit(14);
                /* No way back to root. */
                if (setuid(0) == 0)
                        _exit(15);
                _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        user_spec_clear(&u);
}

static void test_switch_child_unprivileged_fails(void **state) {
        if (getuid() != 0)
                skip();
        /* A child that already dropped root cannot switch: errors surface. */
        struct user_spec u = {};
        resolve_ok("bob", &u);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (setresuid(65534, 65534, 65534) < 0)
                        _exit(20);
                _exit(user_switch_child(&u) == -EPERM ? 0 : 21);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        user_spec_clear(&u);
}

/* Names of ids for listings: the first entry of an id wins (dup has uid
 * 1000 after alice), malformed lines are skipped, unknown ids have none,
 * and missing files mean no names at all. */
static void test_names(void **state) {
        (void) state;
        struct user_names *n = NULL;
        assert_int_equal(user_names_load(passwd_path, group_path, &n), 0);
        assert_string_equal(user_names_user(n, 0), "root");
        assert_string_equal(user_names_user(n, 1000), "alice");
        assert_string_equal(user_names_user(n, 1001), "bob");
        assert_string_equal(user_names_user(n, 3000), "4242");
        assert_null(user_names_user(n, 12));
        assert_null(user_names_user(n, 5)); /* a comment */
        assert_null(user_names_user(n, 4294967295u));
        assert_string_equal(user_names_group(n, 100), "users");
        assert_string_equal(user_names_group(n, 29), "audio");
        assert_null(user_names_group(n, 9));
        assert_null(user_names_group(n, 11));
        user_names_free(n);
        assert_int_equal(user_names_load(missing_path, missing_path, &n), 0);
        assert_null(user_names_user(n, 0));
        assert_null(user_names_group(n, 0));
        user_names_free(n);
        user_names_free(NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_name),
                cmocka_unit_test(test_name_group),
                cmocka_unit_test(test_numeric_known),
                cmocka_unit_test(test_numeric_unknown),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_missing_group_file),
                cmocka_unit_test(test_long_lines),
                cmocka_unit_test(test_switch_child),
                cmocka_unit_test(test_switch_child_unprivileged_fails),
                cmocka_unit_test(test_names),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
