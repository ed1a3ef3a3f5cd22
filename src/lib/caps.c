/* The per-address cache of negotiation outcomes (client.h, "extensions"):
 * a small table under one mutex, least recently used entry replaced when
 * full. Entries are a few hundred bytes; lookups are rare next to the
 * network round trips they save. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "client-internal.h"
#include "common/io.h"
#include "common/macro.h"
#include "conn-internal.h"
#include "vsock/error.h"

/* Hosts talk to a handful of agents; a fleet manager's process with more
 * just negotiates a little more often. */
#define CAPS_CACHE_MAX 64

struct caps_entry {
        char key[CAPS_KEY_MAX];         /* "" = free */
        bool base_only;
        int64_t at_ns;                  /* when it was learnt */
        uint64_t used;                  /* LRU clock */
        struct vsock_caps caps;
};

static pthread_mutex_t caps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct caps_entry caps_table[CAPS_CACHE_MAX];
static uint64_t caps_clock;
static int64_t (*caps_now)(void) = now_ns;

void caps_cache_set_clock(int64_t (*now)(void)) {
        pthread_mutex_lock(&caps_lock);
        caps_now = now ? now : now_ns;
        pthread_mutex_unlock(&caps_lock);
}

static struct caps_entry *find_locked(const char *key) {
        for (size_t i = 0; i < CAPS_CACHE_MAX; i++)
                if (caps_table[i].key[0] && strcmp(caps_table[i].key, key) == 0)
                        return &caps_table[i];
        return NULL;
}

/* A free slot, else the least recently used one. */
static struct caps_entry *victim_locked(void) {
        struct caps_entry *v = &caps_table[0];
        for (size_t i = 0; i < CAPS_CACHE_MAX; i++) {
                if (!caps_table[i].key[0])
                        return &caps_table[i];
                if (caps_table[i].used < v->used)
                        v = &caps_table[i];
        }
        return v;
}

void caps_cache_put(const char *key, const struct vsock_caps *caps) {
        if (!key || !key[0] || strlen(key) >= CAPS_KEY_MAX)
                return;
        pthread_mutex_lock(&caps_lock);
        struct caps_entry *e = find_locked(key);
        if (!e) {
                e = victim_locked();
                memset(e, 0, sizeof *e);
                strcpy(e->key, key);
        }
        e->base_only = !caps;
        e->at_ns = caps_now();
        e->used = ++caps_clock;
        if (caps)
                e->caps = *caps;
        else
                memset(&e->caps, 0, sizeof e->caps);
        pthread_mutex_unlock(&caps_lock);
}

static int key_from_addr(const struct vsock_addr *a, char key[CAPS_KEY_MAX]) {
        int n = vsock_addr_format(a, key, CAPS_KEY_MAX);
        if (n < 0)
                return n;
        return n >= CAPS_KEY_MAX ? -ENAMETOOLONG : 0;
}

int caps_key_conn(const vsock_conn *c, char key[CAPS_KEY_MAX]) {
        const struct vsock_addr *a = c ? vsock_conn_remote_addr(c) : NULL;
        if (!a)
                return -EINVAL;
        return key_from_addr(a, key);
}

static int key_from_string(const char *addr, char key[CAPS_KEY_MAX]) {
        struct vsock_addr a;
        if (!addr || vsock_addr_parse(addr, VSOCK_PORT_EXEC, &a, NULL) < 0)
                return VSOCK_ERR(VSOCK_E_BAD_ADDRESS, EINVAL);
        return key_from_addr(&a, key);
}

/* Copy as much of @from as the caller's struct holds. */
void caps_copy_out(const struct vsock_caps *from, struct vsock_caps *to) {
        size_t n = MIN(to->size, sizeof *from);
        size_t size = to->size;
        if (n > sizeof to->size)
                memcpy((char *) to + sizeof to->size, (const char *) from + sizeof from->size, n - sizeof to->size);
        to->size = size;
}

_public_ int vsock_caps_lookup(const char *addr, struct vsock_caps *ret) {
        char key[CAPS_KEY_MAX];
        int r = key_from_string(addr, key);
        if (r < 0)
                return r == -ENAMETOOLONG ? -ENOENT : r;
        if (ret && ret->size < sizeof ret->size)
                return -EINVAL;
        pthread_mutex_lock(&caps_lock);
        struct caps_entry *e = find_locked(key);
        if (e && e->base_only && caps_now() - e->at_ns >= CAPS_BASE_ONLY_TTL_NS) {
                e->key[0] = '\0'; /* expired: probe again */
                e = NULL;
        }
        if (!e)
                r = -ENOENT;
        else if (e->base_only)
                r = VSOCK_ERR(VSOCK_E_UNSUPPORTED, ENOTSUP);
        else {
                e->used = ++caps_clock;
                if (ret)
                        caps_copy_out(&e->caps, ret);
                r = 0;
        }
        pthread_mutex_unlock(&caps_lock);
        return r;
}

_public_ void vsock_caps_forget(const char *addr) {
        char key[CAPS_KEY_MAX];
        if (addr && key_from_string(addr, key) < 0)
                return;
        pthread_mutex_lock(&caps_lock);
        for (size_t i = 0; i < CAPS_CACHE_MAX; i++)
                if (!addr || strcmp(caps_table[i].key, key) == 0)
                        memset(&caps_table[i], 0, sizeof caps_table[i]);
        pthread_mutex_unlock(&caps_lock);
}
