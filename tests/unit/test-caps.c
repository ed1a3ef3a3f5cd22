/* The per-address cache of negotiation outcomes (src/lib/caps.c): what a
 * lookup answers, the 10-minute life of "base only", the size bound, the
 * size-checked copy, and concurrent use. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/client-internal.h"
#include "vsock/vsock.h"

static int64_t fake_now;
static int64_t fake_clock(void) { return fake_now; }

static void key_of(const char *addr, char key[CAPS_KEY_MAX]) {
        struct vsock_addr a;
        assert_int_equal(vsock_addr_parse(addr, VSOCK_PORT_EXEC, &a, NULL), 0);
        int n = vsock_addr_format(&a, key, CAPS_KEY_MAX);
        assert_true(n > 0 && n < CAPS_KEY_MAX);
}

static int setup(void **state) {
        (void) state;
        fake_now = INT64_C(1000) * 1000000000;
        caps_cache_set_clock(fake_clock);
        vsock_caps_forget(NULL);
        return 0;
}

static struct vsock_caps some_caps(int tag) {
        struct vsock_caps c = VSOCK_CAPS_INIT;
        c.version = 1;
        c.features = VSOCK_FEATURE_REUSE | VSOCK_FEATURE_FS;
        snprintf(c.boot_id, sizeof c.boot_id, "boot-%d", tag);
        snprintf(c.features_text, sizeof c.features_text, "reuse,fs");
        c.limits.list_page_max = 4096;
        return c;
}

static void test_lookup(void **state) {
        (void) state;
        char key[CAPS_KEY_MAX];
        key_of("unix:/run/a.sock", key);
        struct vsock_caps got = VSOCK_CAPS_INIT;
        assert_int_equal(vsock_caps_lookup("unix:/run/a.sock", &got), -ENOENT);
        struct vsock_caps c = some_caps(1);
        caps_cache_put(key, &c);
        assert_int_equal(vsock_caps_lookup("unix:/run/a.sock", &got), 0);
        assert_memory_equal(&got, &c, sizeof c);
        /* Another address is another entry. */
        assert_int_equal(vsock_caps_lookup("unix:/run/b.sock", &got), -ENOENT);
        /* A refreshed reply replaces the entry (a new boot id). */
        struct vsock_caps c2 = some_caps(2);
        caps_cache_put(key, &c2);
        assert_int_equal(vsock_caps_lookup("unix:/run/a.sock", &got), 0);
        assert_string_equal(got.boot_id, "boot-2");
        /* HelloReply entries do not age out. */
        fake_now += INT64_C(3600) * 1000000000;
        assert_int_equal(vsock_caps_lookup("unix:/run/a.sock", NULL), 0);
        vsock_caps_forget("unix:/run/a.sock");
        assert_int_equal(vsock_caps_lookup("unix:/run/a.sock", NULL), -ENOENT);
        assert_int_equal(vsock_err_kind(vsock_caps_lookup("nonsense:::", NULL)), VSOCK_E_BAD_ADDRESS);
}

static void test_base_only_ttl(void **state) {
        (void) state;
        char key[CAPS_KEY_MAX];
        key_of("vsock:3:5000", key);
        caps_cache_put(key, NULL);
        int r = vsock_caps_lookup("vsock:3:5000", NULL);
        assert_int_equal(vsock_err_kind(r), VSOCK_E_UNSUPPORTED);
        fake_now += INT64_C(599) * 1000000000;
        assert_int_equal(vsock_err_kind(vsock_caps_lookup("vsock:3:5000", NULL)), VSOCK_E_UNSUPPORTED);
        fake_now += INT64_C(1) * 1000000000;
        assert_int_equal(vsock_caps_lookup("vsock:3:5000", NULL), -ENOENT);
        /* A HelloReply after "base only" replaces it (agent upgraded). */
        caps_cache_put(key, NULL);
        struct vsock_caps c = some_caps(3);
        caps_cache_put(key, &c);
        assert_int_equal(vsock_caps_lookup("vsock:3:5000", NULL), 0);
}

/* Bounded: the least recently used entry goes when the table is full. */
static void test_bounded_lru(void **state) {
        (void) state;
        char key[CAPS_KEY_MAX], addr[64];
        struct vsock_caps c = some_caps(0);
        for (int i = 0; i < 64; i++) {
                snprintf(addr, sizeof addr, "unix:/run/agent-%d.sock", i);
                key_of(addr, key);
                caps_cache_put(key, &c);
                fake_now++;
        }
        assert_int_equal(vsock_caps_lookup("unix:/run/agent-0.sock", NULL), 0); /* used: now the newest */
        key_of("unix:/run/agent-64.sock", key);
        caps_cache_put(key, &c);
        assert_int_equal(vsock_caps_lookup("unix:/run/agent-0.sock", NULL), 0);
        assert_int_equal(vsock_caps_lookup("unix:/run/agent-1.sock", NULL), -ENOENT);
        assert_int_equal(vsock_caps_lookup("unix:/run/agent-64.sock", NULL), 0);
        int present = 0;
        for (int i = 0; i <= 64; i++) {
                snprintf(addr, sizeof addr, "unix:/run/agent-%d.sock", i);
                present += vsock_caps_lookup(addr, NULL) == 0;
        }
        assert_int_equal(present, 64);
        /* A key too long to keep is not kept (and not an error). */
        char longkey[CAPS_KEY_MAX + 10];
        memset(longkey, 'x', sizeof longkey - 1);
        longkey[sizeof longkey - 1] = '\0';
        caps_cache_put(longkey, &c);
}

static void test_size_checked(void **state) {
        (void) state;
        char key[CAPS_KEY_MAX];
        key_of("unix:/run/s.sock", key);
        struct vsock_caps c = some_caps(4);
        caps_cache_put(key, &c);
        struct vsock_caps small;
        memset(&small, 0x77, sizeof small);
        small.size = offsetof(struct vsock_caps, features_text);
        assert_int_equal(vsock_caps_lookup("unix:/run/s.sock", &small), 0);
        assert_int_equal(small.size, offsetof(struct vsock_caps, features_text));
        assert_int_equal(small.version, 1);
        assert_int_equal(small.features, c.features);
        assert_int_equal((uint8_t) small.features_text[0], 0x77);
        struct vsock_caps bad = { .size = 0 };
        assert_int_equal(vsock_caps_lookup("unix:/run/s.sock", &bad), -EINVAL);
}

static void test_feature_names(void **state) {
        (void) state;
        assert_string_equal(vsock_feature_name(VSOCK_FEATURE_FILE_GET), "file-get");
        assert_string_equal(vsock_feature_name(VSOCK_FEATURE_FWD_LISTEN), "fwd-listen");
        assert_null(vsock_feature_name(0));
        assert_null(vsock_feature_name(VSOCK_FEATURE_FS | VSOCK_FEATURE_LIST));
        assert_null(vsock_feature_name(1u << 20));
        assert_int_equal(vsock_feature_from_name("list"), VSOCK_FEATURE_LIST);
        assert_int_equal(vsock_feature_from_name("proc"), VSOCK_FEATURE_PROC);
        assert_int_equal(vsock_feature_from_name("teleport"), 0);
        assert_string_equal(vsock_feature_name(VSOCK_FEATURE_CHECKSUM_CRC32C), "checksum-crc32c");
        assert_int_equal(vsock_feature_from_name("checksum-crc32c"), VSOCK_FEATURE_CHECKSUM_CRC32C);
        for (unsigned b = 1; b <= VSOCK_FEATURE_CHECKSUM_CRC32C; b <<= 1)
                assert_int_equal(vsock_feature_from_name(vsock_feature_name(b)), b);
}

static void *hammer(void *p) {
        int id = (int) (intptr_t) p;
        char key[CAPS_KEY_MAX], addr[64];
        struct vsock_caps c = some_caps(id);
        for (int i = 0; i < 20000; i++) {
                snprintf(addr, sizeof addr, "unix:/run/h-%d.sock", (i * 7 + id) % 100);
                key_of(addr, key);
                if (i % 3 == 0)
                        caps_cache_put(key, i % 2 ? &c : NULL);
                struct vsock_caps got = VSOCK_CAPS_INIT;
                int r = vsock_caps_lookup(addr, &got);
                if (r == 0 && strncmp(got.boot_id, "boot-", 5) != 0)
                        return (void *) 1; /* a torn entry */
        }
        return NULL;
}

static void test_threads(void **state) {
        (void) state;
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
                assert_int_equal(pthread_create(&t[i], NULL, hammer, (void *) (intptr_t) i), 0);
        for (int i = 0; i < 4; i++) {
                void *res;
                assert_int_equal(pthread_join(t[i], &res), 0);
                assert_null(res);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_lookup, setup),
                cmocka_unit_test_setup(test_base_only_ttl, setup),
                cmocka_unit_test_setup(test_bounded_lru, setup),
                cmocka_unit_test_setup(test_size_checked, setup),
                cmocka_unit_test_setup(test_feature_names, setup),
                cmocka_unit_test_setup(test_threads, setup),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
