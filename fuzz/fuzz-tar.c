/* The tar push parser (src/lib/tar_parse.c). The first byte seeds the
 * piece sizes. Checks: the same archive fed whole and in pieces gives the
 * same entries, contents and verdict; every name handed out is clean
 * (relative, no ".."), and content never exceeds the entry's size; an
 * accepted archive, written again by our writer, parses to the same
 * entries. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/sha256.h"
#include "lib/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENTRIES 32

struct seen {
        struct tar_entry e;
        char *name, *link;
        uint64_t got;
        struct sha256 h;
        uint8_t digest[SHA256_DIGEST_SIZE];
};

struct run {
        struct seen v[MAX_ENTRIES];
        size_t n;
        int verdict;
        bool more; /* entries beyond MAX_ENTRIES */
};

static void check_name(const char *name) {
        char clean[TAR_NAME_MAX + 2];
        size_t len = strlen(name);
        if (len == 0 || len > TAR_NAME_MAX || tar_name_clean(name, len, clean) != (int) len ||
            strcmp(clean, name) != 0)
                abort();
}

static void finish_entry(struct run *r) {
        if (r->n > 0 && r->n <= MAX_ENTRIES)
                sha256_final(&r->v[r->n - 1].h, r->v[r->n - 1].digest);
}

static void parse(const uint8_t *data, size_t size, unsigned piece, struct run *r) {
        struct tar_parser *p;
        memset(r, 0, sizeof *r);
        if (tar_parser_new(&p) < 0)
                abort();
        size_t off = 0;
        int err = 0;
        while (off < size && !err) {
                size_t n = piece ? piece : size;
                if (n > size - off)
                        n = size - off;
                const uint8_t *in = data + off;
                size_t left = n;
                while (left > 0) {
                        size_t used;
                        const uint8_t *d;
                        size_t dn;
                        int ev = tar_parser_feed(p, in, left, &used, &d, &dn);
                        if (ev < 0) {
                                err = ev;
                                break;
                        }
                        if (used == 0 || used > left)
                                abort();
                        in += used;
                        left -= used;
                        if (ev == TAR_EV_ENTRY) {
                                const struct tar_entry *e = tar_parser_entry(p);
                                check_name(e->name);
                                if (e->type == TAR_HARDLINK)
                                        check_name(e->link);
                                finish_entry(r);
                                if (r->n == MAX_ENTRIES) {
                                        r->more = true;
                                        r->n++;
                                        continue;
                                }
                                if (r->n > MAX_ENTRIES)
                                        continue;
                                struct seen *s = &r->v[r->n++];
                                s->e = *e;
                                s->name = strdup(e->name);
                                s->link = strdup(e->link ? e->link : "");
                                if (!s->name || !s->link)
                                        abort();
                                sha256_init(&s->h);
                        } else if (ev == TAR_EV_DATA) {
                                if (r->n == 0)
                                        abort();
                                if (r->n > MAX_ENTRIES)
                                        continue;
                                struct seen *s = &r->v[r->n - 1];
                                s->got += dn;
                                if (s->got > s->e.size || d < data || d + dn > data + size)
                                        abort();
                                sha256_update(&s->h, d, dn);
                        }
                }
                off += n;
        }
        finish_entry(r);
        r->verdict = err ? err : tar_parser_finish(p);
        tar_parser_free(p);
}

static void run_free(struct run *r) {
        for (size_t i = 0; i < r->n && i < MAX_ENTRIES; i++) {
                free(r->v[i].name);
                free(r->v[i].link);
        }
}

static void same(const struct run *a, const struct run *b, bool verdict) {
        if ((verdict && a->verdict != b->verdict) || a->n != b->n)
                abort();
        for (size_t i = 0; i < a->n && i < MAX_ENTRIES; i++) {
                const struct seen *x = &a->v[i], *y = &b->v[i];
                if (x->e.type != y->e.type || strcmp(x->name, y->name) != 0 || strcmp(x->link, y->link) != 0 ||
                    x->e.size != y->e.size || x->e.mode != y->e.mode || x->e.uid != y->e.uid ||
                    x->e.gid != y->e.gid || x->e.mtime != y->e.mtime || x->e.mtime_nsec != y->e.mtime_nsec ||
                    x->got != y->got || memcmp(x->digest, y->digest, sizeof x->digest) != 0)
                        abort();
        }
}

/* Write the entries of @r again (content regenerated from the input is
 * not kept: only complete, empty-content archives are rewritten) and
 * parse the result. */
static void rewrite(const struct run *r) {
        struct tar_writer *w;
        if (r->more || tar_writer_new(&w) < 0)
                return;
        uint8_t *out = NULL;
        size_t len = 0, cap = 0;
        for (size_t i = 0; i < r->n; i++) {
                const struct seen *s = &r->v[i];
                if (s->e.type == TAR_OTHER || s->e.size > 0)
                        goto out; /* content is not kept here */
                struct tar_entry e = s->e;
                e.name = s->name;
                e.link = s->e.link ? s->link : NULL;
                e.uname = e.gname = NULL;
                if (tar_writer_add(w, &e) < 0)
                        goto out;
                for (;;) {
                        if (len + 4096 > cap) {
                                cap = 2 * (len + 4096);
                                uint8_t *n = realloc(out, cap);
                                if (!n)
                                        goto out;
                                out = n;
                        }
                        size_t k = tar_writer_read(w, out + len, 4096);
                        if (k == 0)
                                break;
                        len += k;
                }
        }
        if (tar_writer_finish(w) < 0)
                abort();
        if (len + 2048 > cap && !(out = realloc(out, cap = len + 2048)))
                goto out;
        len += tar_writer_read(w, out + len, 2048);
        struct run *again = malloc(sizeof *again);
        if (!again)
                goto out;
        parse(out, len, 0, again);
        if (again->verdict != 0)
                abort();
        same(r, again, false);
        run_free(again);
        free(again);
out:
        free(out);
        tar_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        unsigned piece = data[0] ? data[0] : 1;
        data++, size--;
        struct run *whole = malloc(sizeof *whole), *pieces = malloc(sizeof *pieces);
        if (!whole || !pieces)
                abort();
        parse(data, size, 0, whole);
        parse(data, size, piece, pieces);
        same(whole, pieces, true);
        if (whole->verdict == 0)
                rewrite(whole);
        run_free(whole);
        run_free(pieces);
        free(whole);
        free(pieces);
        return 0;
}
