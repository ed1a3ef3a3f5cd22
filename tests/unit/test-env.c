/* env_build(): the layers of a command's environment and their
 * precedence, the default PATH and TERM, invalid names, and the sorted
 * merge with a large request. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "agent/exec/env.h"

/* The value of @key in @env, or NULL. */
static const char *get(const struct strv *env, const char *key) {
        size_t n = strlen(key);
        for (size_t i = 0; i < env->n; i++)
                if (strncmp(env->v[i], key, n) == 0 && env->v[i][n] == '=')
                        return env->v[i] + n + 1;
        return NULL;
}

static size_t count(const struct strv *env, const char *key) {
        size_t n = strlen(key), c = 0;
        for (size_t i = 0; i < env->n; i++)
                c += strncmp(env->v[i], key, n) == 0 && env->v[i][n] == '=';
        return c;
}

static void assert_sorted_unique(const struct strv *env) {
        assert_null(env->v[env->n]);
        for (size_t i = 1; i < env->n; i++) {
                const char *a = env->v[i - 1], *b = env->v[i];
                size_t la = strcspn(a, "="), lb = strcspn(b, "=");
                int c = memcmp(a, b, la < lb ? la : lb);
                if (c == 0)
                        c = la < lb ? -1 : la > lb;
                if (c >= 0)
                        fail_msg("not sorted and unique: \"%s\" before \"%s\"", a, b);
        }
}

static struct strv build(char **base, const struct vsock_env *vars, size_t n, const struct env_user *u, bool tty) {
        struct strv env = { 0 };
        const char *why = NULL;
        int r = env_build(base, vars, n, u, tty, &env, &why);
        if (r < 0)
                fail_msg("env_build: %s (%s)", strerror(-r), why);
        assert_sorted_unique(&env);
        return env;
}

static void test_layers(void **state) {
        char *base[] = { "HOME=/root", "FOO=agent", "KEEP=1", "USER=root", NULL };
        struct vsock_env vars[] = { { "FOO", "request" }, { "HOME", "/req" } };
        struct env_user u = { "alice", "/home/alice" };
        struct strv env = build(base, vars, 2, &u, false);
        assert_string_equal(get(&env, "FOO"), "request");     /* the request wins */
        assert_string_equal(get(&env, "HOME"), "/req");       /* over the identity too */
        assert_string_equal(get(&env, "USER"), "alice");      /* identity over the agent */
        assert_string_equal(get(&env, "LOGNAME"), "alice");
        assert_string_equal(get(&env, "KEEP"), "1");          /* the agent's, untouched */
        assert_string_equal(get(&env, "PATH"), ENV_DEFAULT_PATH);
        assert_null(get(&env, "TERM"));
        strv_wipe_free(&env);
        assert_null(env.v);
        assert_int_equal(env.n, 0);
        strv_wipe_free(&env); /* twice is fine */
}

static void test_no_user(void **state) {
        char *base[] = { "HOME=/root", NULL };
        struct env_user nohome = { "bob", NULL };
        struct strv env = build(base, NULL, 0, NULL, false);
        assert_string_equal(get(&env, "HOME"), "/root");
        assert_null(get(&env, "USER"));
        strv_wipe_free(&env);
        env = build(base, NULL, 0, &nohome, false);
        assert_string_equal(get(&env, "HOME"), "/");
        strv_wipe_free(&env);
}

static void test_path_and_term(void **state) {
        char *with_path[] = { "PATH=/agent/bin", "TERM=dumb", NULL };
        struct strv env = build(with_path, NULL, 0, NULL, true);
        assert_string_equal(get(&env, "PATH"), "/agent/bin"); /* the agent's over the default */
        assert_string_equal(get(&env, "TERM"), "xterm-256color");
        assert_int_equal(count(&env, "PATH"), 1);
        strv_wipe_free(&env);

        struct vsock_env vars[] = { { "PATH", "/req/bin" }, { "TERM", "vt100" } };
        env = build(with_path, vars, 2, NULL, true);
        assert_string_equal(get(&env, "PATH"), "/req/bin");
        assert_string_equal(get(&env, "TERM"), "vt100");      /* a terminal keeps the request's */
        strv_wipe_free(&env);

        /* Without a terminal the agent's TERM passes through. */
        env = build(with_path, NULL, 0, NULL, false);
        assert_string_equal(get(&env, "TERM"), "dumb");
        strv_wipe_free(&env);
}

static void test_base_skipped(void **state) {
        char longkey[300];
        memset(longkey, 'K', 280);
        strcpy(longkey + 280, "=v");
        char *base[] = { "NOEQUALS", "=empty-key", longkey, "OK=1", NULL };
        struct strv env = build(base, NULL, 0, NULL, false);
        assert_int_equal(env.n, 2); /* OK and PATH */
        assert_string_equal(get(&env, "OK"), "1");
        strv_wipe_free(&env);
}

static void test_invalid_names(void **state) {
        static const char *const bad[] = { "", "A=B" };
        for (size_t i = 0; i < 2; i++) {
                struct vsock_env vars[] = { { "GOOD", "1" }, { (char *) bad[i], "x" } };
                struct strv env = { .n = 42 };
                const char *why = NULL;
                assert_int_equal(env_build(NULL, vars, 2, NULL, false, &env, &why), -EINVAL);
                assert_string_equal(why, "invalid environment variable name");
                assert_int_equal(env.n, 42); /* untouched on failure */
        }
}

static void test_unsorted_request(void **state) {
        /* Another caller than the decoder: unsorted, with repeats (the
         * last one wins), and a NULL value is empty. */
        struct vsock_env vars[] = { { "B", "1" }, { "A", "x" }, { "B", "2" }, { "C", NULL } };
        struct strv env = build(NULL, vars, 4, NULL, false);
        assert_string_equal(get(&env, "B"), "2");
        assert_string_equal(get(&env, "A"), "x");
        assert_string_equal(get(&env, "C"), "");
        assert_int_equal(count(&env, "B"), 1);
        strv_wipe_free(&env);
}

static void test_many(void **state) {
        /* 100k variables over 10k in the agent's environment, half of them
         * overlapping: sorted and merged, not compared pairwise (a hang
         * catcher bounds it, generously). */
        enum { NB = 10000, NR = 100000 };
        char **base = calloc(NB + 1, sizeof *base);
        struct vsock_env *vars = calloc(NR, sizeof *vars);
        assert_non_null(base);
        assert_non_null(vars);
        for (int i = 0; i < NB; i++)
                assert_true(asprintf(&base[i], "V%06d=agent", i * 2) > 0);
        for (int i = 0; i < NR; i++) {
                assert_true(asprintf(&vars[i].key, "V%06d", i) > 0);
                vars[i].value = "req";
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct strv env = build(base, vars, NR, NULL, false);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        assert_true(t1.tv_sec - t0.tv_sec < 20);
        assert_int_equal(env.n, NR + 1); /* and PATH */
        assert_string_equal(get(&env, "V000002"), "req");
        strv_wipe_free(&env);
        for (int i = 0; i < NB; i++)
                free(base[i]);
        for (int i = 0; i < NR; i++)
                free(vars[i].key);
        free(base);
        free(vars);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_layers),        cmocka_unit_test(test_no_user),
                cmocka_unit_test(test_path_and_term), cmocka_unit_test(test_base_skipped),
                cmocka_unit_test(test_invalid_names), cmocka_unit_test(test_unsorted_request),
                cmocka_unit_test(test_many),
        };
        return cmocka_run_group_tests_name("env", tests, NULL, NULL);
}
