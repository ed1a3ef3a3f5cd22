#include "agent/exec/env.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"

/* The agent's environment may hold anything; keys this long are not ours. */
#define BASE_KEY_MAX 256

/* One KEY=VALUE candidate; the key is not NUL-terminated (environ). */
struct env_item {
        const char *key;
        size_t klen;
        const char *value;
        size_t seq;             /* later wins among equal keys */
};

void strv_wipe_free(struct strv *s) {
        for (size_t i = 0; i < s->n; i++) {
                explicit_bzero(s->v[i], strlen(s->v[i]));
                free(s->v[i]);
        }
        free(s->v);
        s->v = NULL;
        s->n = 0;
}

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen) {
        int c = memcmp(a, b, alen < blen ? alen : blen);
        if (c != 0)
                return c;
        return alen < blen ? -1 : alen > blen;
}

static int env_item_cmp(const void *x, const void *y) {
        const struct env_item *a = x, *b = y;
        int c = key_cmp(a->key, a->klen, b->key, b->klen);
        if (c != 0)
                return c;
        return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Sort @items (stable by seq) and keep the last of each key, in place.
 * Returns the new count. */
static size_t items_unique(struct env_item *items, size_t n) {
        qsort(items, n, sizeof *items, env_item_cmp);
        size_t out = 0;
        for (size_t i = 0; i < n; i++) {
                if (out > 0 && key_cmp(items[out - 1].key, items[out - 1].klen, items[i].key, items[i].klen) == 0)
                        items[out - 1] = items[i];
                else
                        items[out++] = items[i];
        }
        return out;
}

static int strv_push(struct strv *env, size_t *cap, const struct env_item *it) {
        if (env->n + 2 > *cap) {
                size_t nc = *cap ? *cap * 2 : 64;
                char **nv = reallocarray(env->v, nc, sizeof *nv);
                if (!nv)
                        return -ENOMEM;
                env->v = nv;
                *cap = nc;
        }
        size_t vlen = strlen(it->value);
        char *entry = malloc(it->klen + vlen + 2);
        if (!entry)
                return -ENOMEM;
        memcpy(entry, it->key, it->klen);
        entry[it->klen] = '=';
        memcpy(entry + it->klen + 1, it->value, vlen + 1);
        env->v[env->n++] = entry;
        env->v[env->n] = NULL;
        return 0;
}

/* The lower layers (the default PATH, the agent's environment, identity,
 * terminal), sorted and unique. */
static int base_items(char *const *base, const struct env_user *user, bool term, struct env_item **ret,
                      size_t *ret_n) {
        size_t n = 0, total = 0;
        for (char *const *p = base; p && *p; p++)
                total++;
        struct env_item *items = calloc(total + 5, sizeof *items);
        if (!items)
                return -ENOMEM;
        items[n] = (struct env_item) { "PATH", 4, ENV_DEFAULT_PATH, n };
        n++;
        for (char *const *p = base; p && *p; p++) {
                const char *eq = strchr(*p, '=');
                if (!eq || eq == *p || (size_t) (eq - *p) >= BASE_KEY_MAX)
                        continue;
                items[n] = (struct env_item) { *p, (size_t) (eq - *p), eq + 1, n };
                n++;
        }
        if (user) {
                items[n] = (struct env_item) { "HOME", 4, user->home ? user->home : "/", n };
                n++;
                items[n] = (struct env_item) { "USER", 4, user->name, n };
                n++;
                items[n] = (struct env_item) { "LOGNAME", 7, user->name, n };
                n++;
        }
        if (term) {
                items[n] = (struct env_item) { "TERM", 4, "xterm-256color", n };
                n++;
        }
        *ret_n = items_unique(items, n);
        *ret = items;
        return 0;
}

/* The request's variables, sorted and unique (the decoder hands them so:
 * sort a copy only when some other caller did not). */
static int request_items(const struct vsock_env *vars, size_t n_vars, struct env_item **ret, size_t *ret_n,
                         bool *ret_has_term) {
        struct env_item *items = n_vars ? calloc(n_vars, sizeof *items) : NULL;
        if (n_vars && !items)
                return -ENOMEM;
        bool sorted = true, has_term = false;
        for (size_t i = 0; i < n_vars; i++) {
                const char *k = vars[i].key;
                items[i] = (struct env_item) { k, strlen(k), vars[i].value ? vars[i].value : "", i };
                if (i > 0 && key_cmp(items[i - 1].key, items[i - 1].klen, items[i].key, items[i].klen) >= 0)
                        sorted = false;
                has_term |= strcmp(k, "TERM") == 0;
        }
        *ret_n = sorted ? n_vars : items_unique(items, n_vars);
        *ret = items;
        *ret_has_term = has_term;
        return 0;
}

int env_build(char *const *base, const struct vsock_env *vars, size_t n_vars, const struct env_user *user, bool tty,
              struct strv *ret, const char **ret_why) {
        _cleanup_free_ struct env_item *lo = NULL, *req = NULL;
        struct strv env = { 0 };
        size_t n_lo = 0, n_req = 0, cap = 0;
        bool has_term = false;
        int r;

        for (size_t i = 0; i < n_vars; i++)
                if (!vars[i].key[0] || strchr(vars[i].key, '=')) {
                        *ret_why = "invalid environment variable name";
                        return -EINVAL;
                }
        r = request_items(vars, n_vars, &req, &n_req, &has_term);
        if (r >= 0)
                r = base_items(base, user, tty && !has_term, &lo, &n_lo);

        /* Merge: on equal keys the request wins. */
        size_t i = 0, j = 0;
        while (r >= 0 && (i < n_lo || j < n_req)) {
                const struct env_item *pick;
                int c = i >= n_lo ? 1 : j >= n_req ? -1 : key_cmp(lo[i].key, lo[i].klen, req[j].key, req[j].klen);
                if (c < 0)
                        pick = &lo[i++];
                else {
                        i += c == 0;
                        pick = &req[j++];
                }
                r = strv_push(&env, &cap, pick);
        }
        if (r < 0) {
                strv_wipe_free(&env);
                *ret_why = "out of memory";
                return r;
        }
        *ret = env;
        return 0;
}
