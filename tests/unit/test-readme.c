/* The README's library snippet, compiled as it stands (with -Wwrite-strings,
 * so a literal in a char * field fails the build) and run against a
 * scripted agent: it prints the output, returns the exit code, reports a
 * failure, and (under LeakSanitizer) frees what it got. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake-agent.h"

/* readme-snippet.c, generated from README.md and built beside this file. */
int guest_uname(const char *addr);

static void script_uname(struct fake_agent *fa) {
        static const char req[] = "{\"command\":\"uname -a\"}";
        static const char resp[] = "{\"exit_code\":3,\"stdout\":\"TGludXggZ3Vlc3QK\",\"stderr\":null,\"error\":\"\"}";
        if (fa_expect_frame(fa, 1, req, sizeof req - 1))
                fa_send(fa, 2, resp, sizeof resp - 1);
}

static char sock_path[108];

static void test_snippet_runs(void **state) {
        struct fake_agent fa;
        assert_int_equal(fake_agent_start_unix(&fa, sock_path, 0, script_uname, NULL), 0);
        char addr[128];
        snprintf(addr, sizeof addr, "unix:%s", sock_path);

        /* Capture what it prints. */
        fflush(stdout);
        int saved = dup(STDOUT_FILENO), p[2];
        assert_true(saved >= 0 && pipe(p) == 0);
        dup2(p[1], STDOUT_FILENO);
        int code = guest_uname(addr);
        fflush(stdout);
        dup2(saved, STDOUT_FILENO);
        close(saved);
        close(p[1]);
        char out[64] = "";
        ssize_t n = read(p[0], out, sizeof out - 1);
        close(p[0]);
        const char *f = fake_agent_join(&fa);
        if (f)
                fail_msg("%s", f);
        assert_int_equal(code, 3);
        assert_true(n > 0);
        out[n] = '\0';
        assert_string_equal(out, "Linux guest\n");
}

static void test_snippet_reports_failure(void **state) {
        char addr[128];
        snprintf(addr, sizeof addr, "unix:%s.absent", sock_path);
        assert_int_equal(guest_uname(addr), -1);
}

int main(void) {
        snprintf(sock_path, sizeof sock_path, "/tmp/test-readme-%d.sock", (int) getpid());
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_snippet_runs),
                cmocka_unit_test(test_snippet_reports_failure),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
