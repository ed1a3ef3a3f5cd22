/* vsock_shell_quote() and shquote_matches(): fixed cases, and a property
 * test that runs random argument vectors (every byte but NUL: quotes,
 * newlines, globs, empty words, leading dashes, non-UTF-8) through the
 * quoting and then through real shells (/bin/sh, busybox sh and bash when
 * present), which must give back exactly the same argv. */
#include <errno.h>
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

#include "lib/shquote.h"
#include "vsock/client.h"

static char *quote(char *const *w, size_t n) {
        char *s = NULL;
        assert_int_equal(vsock_shell_quote(w, n, &s), 0);
        assert_non_null(s);
        return s;
}

static void test_fixed(void **state) {
        static const struct {
                const char *words[4];
                size_t n;
                const char *want;
        } cases[] = {
                { { "ls" }, 1, "'ls'" },
                { { "printf", "[%s]", "a b" }, 3, "'printf' '[%s]' 'a b'" },
                { { "echo", "it's" }, 2, "'echo' 'it'\\''s'" },
                { { "x", "" }, 2, "'x' ''" },
                { { "'" }, 1, "''\\'''" },
                { { "a\nb", "-n" }, 2, "'a\nb' '-n'" },
                { { "if", "A=b", "~", "*" }, 4, "'if' 'A=b' '~' '*'" },
                { {}, 0, "" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                char *s = quote((char *const *) cases[i].words, cases[i].n);
                assert_string_equal(s, cases[i].want);
                if (cases[i].n > 0)
                        assert_true(shquote_matches(s, (char *const *) cases[i].words, cases[i].n));
                free(s);
        }
}

static void test_matches_only_the_canonical_form(void **state) {
        char *w[] = { "printf", "%s", "a b" };
        assert_true(shquote_matches("'printf' '%s' 'a b'", w, 3));
        static const char *const near[] = {
                "printf '%s' 'a b'",          /* unquoted first word */
                "'printf' '%s' 'a b' ",        /* trailing space */
                "'printf'  '%s' 'a b'",        /* two spaces */
                "'printf' '%s' 'a b'x",
                "'printf' '%s'",               /* a word short */
                "'printf' \"%s\" 'a b'",       /* other quotes */
                "",
        };
        for (size_t i = 0; i < sizeof near / sizeof *near; i++)
                assert_false(shquote_matches(near[i], w, 3));
        assert_false(shquote_matches(NULL, w, 3));
        assert_false(shquote_matches("''", w, 0));
}

static void test_bad_arguments(void **state) {
        char *s = NULL;
        char *w[] = { "a", NULL };
        assert_int_equal(vsock_shell_quote(w, 2, &s), -EINVAL);
        assert_int_equal(vsock_shell_quote(NULL, 1, &s), -EINVAL);
        assert_int_equal(vsock_shell_quote(w, 1, NULL), -EINVAL);
        assert_null(s);
}

/* Run `SHELL -c LINE` and collect its stdout. */
static size_t run_shell(char *const *shell_argv, const char *line, char *out, size_t cap) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                dup2(p[1], 1);
                close(p[0]);
                close(p[1]);
                char *argv[8];
                size_t k = 0;
                for (; shell_argv[k]; k++)
                        argv[k] = shell_argv[k];
                argv[k++] = "-c";
                argv[k++] = (char *) line;
                argv[k] = NULL;
                execv(argv[0], argv);
                _exit(127);
        }
        close(p[1]);
        size_t got = 0;
        for (;;) {
                assert_true(got < cap);
                ssize_t n = read(p[0], out + got, cap - got);
                if (n < 0 && errno == EINTR)
                        continue;
                assert_true(n >= 0);
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        close(p[0]);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        return got;
}

/* Bytes 1..255, weighted towards what shells care about. */
static char random_byte(void) {
        static const char special[] = "'\"\\$`!*?[]{}()<>|&;~=#% \t\n-";
        switch (rand() % 4) {
        case 0:
                return special[rand() % (int) (sizeof special - 1)];
        case 1:
                return (char) (0x80 + rand() % 0x80); /* never valid UTF-8 alone */
        default:
                return (char) (1 + rand() % 255);
        }
}

static void check_shell(char *const *shell_argv) {
        enum { ROUNDS = 150, MAX_WORDS = 6, MAX_LEN = 12 };
        char store[MAX_WORDS][MAX_LEN + 1];
        char out[4096], want[4096];
        for (int round = 0; round < ROUNDS; round++) {
                /* printf's format repeats for each argument: each word comes
                 * back followed by a NUL, which no word holds. */
                char *w[MAX_WORDS + 2] = { "printf", "%s\\0" };
                size_t n = 1 + (size_t) (rand() % MAX_WORDS), wl = 0;
                for (size_t i = 0; i < n; i++) {
                        size_t len = (size_t) (rand() % (MAX_LEN + 1));
                        for (size_t k = 0; k < len; k++)
                                store[i][k] = random_byte();
                        store[i][len] = '\0';
                        w[2 + i] = store[i];
                        memcpy(want + wl, store[i], len + 1);
                        wl += len + 1;
                }
                char *line = quote(w, n + 2);
                assert_true(shquote_matches(line, w, n + 2));
                size_t got = run_shell(shell_argv, line, out, sizeof out);
                if (got != wl || memcmp(out, want, wl) != 0)
                        fail_msg("%s: argv did not survive (round %d, %zu words): %s", shell_argv[0], round, n,
                                 line);
                free(line);
        }
}

static void test_round_trip_dash(void **state) {
        char *sh[] = { "/bin/sh", NULL };
        check_shell(sh);
}

static void test_round_trip_busybox(void **state) {
        static const char *const paths[] = { "/bin/busybox", "/usr/bin/busybox" };
        for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
                if (access(paths[i], X_OK) == 0) {
                        char *sh[] = { (char *) paths[i], "sh", NULL };
                        check_shell(sh);
                        return;
                }
        skip();
}

static void test_round_trip_bash(void **state) {
        if (access("/bin/bash", X_OK) != 0)
                skip();
        char *sh[] = { "/bin/bash", NULL };
        check_shell(sh);
}

int main(void) {
        srand(20240611);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fixed),
                cmocka_unit_test(test_matches_only_the_canonical_form),
                cmocka_unit_test(test_bad_arguments),
                cmocka_unit_test(test_round_trip_dash),
                cmocka_unit_test(test_round_trip_busybox),
                cmocka_unit_test(test_round_trip_bash),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
