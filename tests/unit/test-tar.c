/* The pure tar layer (src/lib/tar.h), without a disk: the writer's
 * headers (ustar fields, pax records where ustar falls short), writer ->
 * parser round trips in random splits, and the parser's refusals of
 * hostile or broken archives. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/tar-internal.h"
#include "lib/tar.h"

static uint64_t rng = 0x853c49e6748fea9bULL;
static uint64_t rnd(uint64_t n) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return n ? rng % n : rng;
}

/* ---- archives in memory -------------------------------------------------------------- */

struct archive {
        uint8_t *data;
        size_t len, cap;
};

static void put(struct archive *a, const void *p, size_t n) {
        if (a->len + n > a->cap) {
                a->cap = (a->len + n) * 2 + 4096;
                a->data = realloc(a->data, a->cap);
                assert_non_null(a->data);
        }
        memcpy(a->data + a->len, p, n);
        a->len += n;
}

/* Drain the writer in pieces of random size, the way a stream does. */
static void drain(struct tar_writer *w, struct archive *a) {
        uint8_t buf[700];
        size_t n;
        while ((n = tar_writer_read(w, buf, 1 + rnd(sizeof buf))) > 0)
                put(a, buf, n);
}

/* An archive of @n entries; contents[i] for files (e[i].size bytes). */
static void write_archive(const struct tar_entry *e, const uint8_t *const *contents, size_t n, struct archive *a) {
        struct tar_writer *w;
        assert_int_equal(tar_writer_new(&w), 0);
        for (size_t i = 0; i < n; i++) {
                int r = tar_writer_add(w, &e[i]);
                if (r < 0)
                        fail_msg("add %s: %d", e[i].name, r);
                drain(w, a);
                uint64_t off = 0;
                while (tar_writer_content_due(w) > 0) {
                        assert_int_equal(tar_writer_add(w, &e[i]), -EBUSY);
                        assert_int_equal(tar_writer_finish(w), -EBUSY);
                        size_t k = (size_t) (1 + rnd(3000));
                        if (k > tar_writer_content_due(w))
                                k = (size_t) tar_writer_content_due(w);
                        put(a, contents[i] + off, k);
                        assert_int_equal(tar_writer_content_done(w, k), 0);
                        off += k;
                        drain(w, a);
                }
        }
        assert_int_equal(tar_writer_finish(w), 0);
        assert_int_equal(tar_writer_finish(w), 0);
        assert_false(tar_writer_done(w));
        drain(w, a);
        assert_true(tar_writer_done(w));
        assert_int_equal(a->len % TAR_BLOCK, 0);
        tar_writer_free(w);
}

struct parsed {
        struct tar_entry e;
        char *name, *link, *uname, *gname;
        uint8_t *content;
        size_t len;
};

struct parse_result {
        struct parsed v[64];
        size_t n;
        int err;
        char msg[512];
};

/* Parse @a fed in random pieces (@max_piece 0: all at once). */
static void parse(const uint8_t *data, size_t len, size_t max_piece, struct parse_result *res) {
        struct tar_parser *p;
        memset(res, 0, sizeof *res);
        assert_int_equal(tar_parser_new(&p), 0);
        size_t off = 0;
        bool end = false;
        while (off < len) {
                size_t piece = max_piece ? 1 + rnd(max_piece) : len;
                if (piece > len - off)
                        piece = len - off;
                const uint8_t *in = data + off;
                size_t left = piece;
                while (left > 0) {
                        size_t used = 0, dn = 0;
                        const uint8_t *d = NULL;
                        int ev = tar_parser_feed(p, in, left, &used, &d, &dn);
                        if (ev < 0) {
                                res->err = ev;
                                snprintf(res->msg, sizeof res->msg, "%s", tar_parser_error(p));
                                /* Sticky. */
                                assert_int_equal(tar_parser_feed(p, in, left, &used, &d, &dn), ev);
                                assert_int_equal(tar_parser_finish(p), ev);
                                tar_parser_free(p);
                                return;
                        }
                        assert_true(used > 0 && used <= left);
                        in += used;
                        left -= used;
                        if (ev == TAR_EV_ENTRY) {
                                const struct tar_entry *e = tar_parser_entry(p);
                                assert_true(res->n < 64);
                                struct parsed *q = &res->v[res->n++];
                                q->e = *e;
                                q->name = strdup(e->name);
                                q->link = e->link ? strdup(e->link) : NULL;
                                q->uname = strdup(e->uname ? e->uname : "");
                                q->gname = strdup(e->gname ? e->gname : "");
                                q->content = malloc(e->size + 1);
                                assert_non_null(q->content);
                        } else if (ev == TAR_EV_DATA) {
                                struct parsed *q = &res->v[res->n - 1];
                                assert_true(d >= data && d + dn <= data + len);
                                assert_true(q->len + dn <= q->e.size);
                                memcpy(q->content + q->len, d, dn);
                                q->len += dn;
                        } else if (ev == TAR_EV_END) {
                                end = true;
                        }
                }
                off += piece;
        }
        res->err = tar_parser_finish(p);
        if (res->err < 0)
                snprintf(res->msg, sizeof res->msg, "%s", tar_parser_error(p));
        else
                assert_true(end);
        assert_true(tar_parser_offset(p) == (res->err ? tar_parser_offset(p) : len));
        tar_parser_free(p);
}

static void parse_result_free(struct parse_result *r) {
        for (size_t i = 0; i < r->n; i++) {
                free(r->v[i].name);
                free(r->v[i].link);
                free(r->v[i].uname);
                free(r->v[i].gname);
                free(r->v[i].content);
        }
}

static char *repeat(char c, size_t n) {
        char *s = malloc(n + 1);
        assert_non_null(s);
        memset(s, c, n);
        s[n] = '\0';
        return s;
}

/* ---- round trips ---------------------------------------------------------------------------- */

static void test_roundtrip_every_feature(void **state) {
        /* Names that fit ustar, need the prefix split, or need pax. */
        char *long_comp = repeat('c', 200);
        char split[300], deep[TAR_NAME_MAX + 1], longlink[3000];
        char *prefix = repeat('p', 120);
        snprintf(split, sizeof split, "%s/%s", prefix, "file-in-prefix");
        free(prefix);
        size_t k = 0;
        while (k + 11 < TAR_NAME_MAX) {
                memcpy(deep + k, "abcdefghij/", 11);
                k += 11;
        }
        memcpy(deep + k, "z", 2);
        memset(longlink, 'L', sizeof longlink - 1);
        longlink[sizeof longlink - 1] = '\0';
        char *longowner = repeat('u', 200);
        static uint8_t blob[70000];
        for (size_t i = 0; i < sizeof blob; i++)
                blob[i] = (uint8_t) rnd(256);

        const struct tar_entry e[] = {
                { .type = TAR_DIR, .name = "top", .mode = 0755, .uid = 0, .gid = 0, .mtime = 1700000000 },
                { .type = TAR_FILE, .name = "top/a.txt", .size = 5, .mode = 0644, .uid = 1000, .gid = 100,
                  .uname = "alice", .gname = "users", .mtime = 1700000001, .mtime_nsec = 123456789 },
                { .type = TAR_FILE, .name = "top/empty", .size = 0, .mode = 0600, .mtime = 0 },
                { .type = TAR_FILE, .name = "top/blob", .size = sizeof blob, .mode = 04755, .mtime = 5 },
                { .type = TAR_SYMLINK, .name = "top/ln", .link = "../../etc/passwd", .mode = 0777, .mtime = 7 },
                { .type = TAR_HARDLINK, .name = "top/hard", .link = "top/a.txt", .mode = 0644 },
                { .type = TAR_FILE, .name = long_comp, .size = 1, .mode = 0644, .mtime = -1, .mtime_nsec = 5 },
                { .type = TAR_FILE, .name = split, .size = 0, .mode = 0644 },
                { .type = TAR_FILE, .name = deep, .size = 0, .mode = 0644 },
                { .type = TAR_SYMLINK, .name = "top/longlink", .link = longlink },
                { .type = TAR_FILE, .name = "top/ids", .uid = 2097152, .gid = 4000000000u, .uname = longowner,
                  .gname = "g", .mode = 0644, .mtime = -100 },
                { .type = TAR_FIFO, .name = "top/fifo", .mode = 0600 },
                { .type = TAR_CHAR, .name = "top/null", .devmajor = 1, .devminor = 3, .mode = 0666 },
                { .type = TAR_BLOCK_DEV, .name = "top/sda", .devmajor = 8, .devminor = 0, .mode = 0660 },
                { .type = TAR_FILE, .name = "./top//x/./y", .size = 2, .mode = 0640, .mtime = 077777777777LL + 1 },
                { .type = TAR_DIR, .name = ".", .mode = 0700 },
        };
        const uint8_t *contents[sizeof e / sizeof e[0]] = {
                [1] = (const uint8_t *) "hello", [3] = blob, [6] = (const uint8_t *) "!", [14] = (const uint8_t *) "xy",
        };
        const char *want_names[] = { "top", "top/a.txt", "top/empty", "top/blob", "top/ln", "top/hard", long_comp,
                                     split, deep, "top/longlink", "top/ids", "top/fifo", "top/null", "top/sda",
                                     "top/x/y", "." };
        size_t n = sizeof e / sizeof e[0];

        struct archive a = { 0 };
        write_archive(e, contents, n, &a);
        for (int round = 0; round < 40; round++) {
                struct parse_result res;
                parse(a.data, a.len, round == 0 ? 0 : round < 10 ? (size_t) round : 1 + rnd(5000), &res);
                if (res.err)
                        fail_msg("parse: %d %s", res.err, res.msg);
                assert_int_equal(res.n, n);
                for (size_t i = 0; i < n; i++) {
                        const struct parsed *q = &res.v[i];
                        assert_string_equal(q->name, want_names[i]);
                        assert_int_equal(q->e.type, e[i].type);
                        assert_int_equal(q->e.mode, e[i].mode);
                        assert_int_equal(q->e.uid, e[i].uid);
                        assert_int_equal(q->e.gid, e[i].gid);
                        assert_true(q->e.mtime == e[i].mtime);
                        assert_int_equal(q->e.mtime_nsec, e[i].mtime_nsec);
                        assert_string_equal(q->uname, e[i].uname ? e[i].uname : "");
                        assert_string_equal(q->gname, e[i].gname ? e[i].gname : "");
                        if (e[i].link)
                                assert_string_equal(q->link, e[i].link);
                        else
                                assert_null(q->link);
                        if (e[i].type == TAR_FILE) {
                                assert_true(q->e.size == e[i].size);
                                assert_int_equal(q->len, e[i].size);
                                if (q->len)
                                        assert_memory_equal(q->content, contents[i], q->len);
                        } else
                                assert_true(q->e.size == 0);
                        if (e[i].type == TAR_CHAR || e[i].type == TAR_BLOCK_DEV) {
                                assert_int_equal(q->e.devmajor, e[i].devmajor);
                                assert_int_equal(q->e.devminor, e[i].devminor);
                        }
                }
                parse_result_free(&res);
        }
        free(a.data);
        free(long_comp);
        free(longowner);
}

/* Which header fields the writer fills, and that pax appears only when
 * ustar cannot say it. */
static void test_writer_header_fields(void **state) {
        struct tar_entry e = { .type = TAR_FILE, .name = "a/b", .size = 3, .mode = 0100644, .uid = 1, .gid = 2,
                               .uname = "root", .gname = "wheel", .mtime = 1234567890 };
        struct archive a = { 0 };
        write_archive(&e, (const uint8_t *[]) { (const uint8_t *) "xyz" }, 1, &a);
        /* header, one content block, two end blocks: no pax */
        assert_int_equal(a.len, 4 * TAR_BLOCK);
        const uint8_t *h = a.data;
        assert_string_equal((const char *) h + H_NAME, "a/b");
        assert_memory_equal(h + H_MODE, "0000644", 8);
        assert_memory_equal(h + H_UID, "0000001", 8);
        assert_memory_equal(h + H_SIZE, "00000000003", 12);
        assert_memory_equal(h + H_MTIME, "11145401322", 12);
        assert_int_equal(h[H_TYPE], '0');
        assert_memory_equal(h + H_MAGIC, "ustar\0" "00", 8);
        assert_string_equal((const char *) h + H_UNAME, "root");
        assert_string_equal((const char *) h + H_GNAME, "wheel");
        uint32_t u;
        int32_t s;
        tar_checksum(h, &u, &s);
        char ck[8];
        snprintf(ck, sizeof ck, "%06o", u);
        assert_memory_equal(h + H_CHKSUM, ck, 6);
        assert_int_equal(h[H_CHKSUM + 6], 0);
        assert_int_equal(h[H_CHKSUM + 7], ' ');
        assert_memory_equal(h + TAR_BLOCK, "xyz", 3);
        free(a.data);

        /* A directory gets a trailing '/'. */
        a = (struct archive) { 0 };
        e = (struct tar_entry) { .type = TAR_DIR, .name = "d", .mode = 0755 };
        write_archive(&e, NULL, 1, &a);
        assert_string_equal((const char *) a.data + H_NAME, "d/");
        assert_int_equal(a.data[H_TYPE], '5');
        free(a.data);

        /* 8 GiB: pax size record and base-256 in the field. */
        a = (struct archive) { 0 };
        e = (struct tar_entry) { .type = TAR_FILE, .name = "big", .size = 8ULL << 30, .mode = 0644, .mtime = 1,
                                 .mtime_nsec = 500000000 };
        struct tar_writer *w;
        assert_int_equal(tar_writer_new(&w), 0);
        assert_int_equal(tar_writer_add(w, &e), 0);
        drain(w, &a);
        assert_true(tar_writer_content_due(w) == 8ULL << 30);
        assert_int_equal(tar_writer_content_done(w, (8ULL << 30) + 1), -EINVAL);
        assert_int_equal(a.data[H_TYPE], 'x');
        const char *rec = (const char *) a.data + TAR_BLOCK;
        assert_non_null(strstr(rec, "19 size=8589934592\n"));
        assert_non_null(strstr(rec, "21 mtime=1.500000000\n"));
        const uint8_t *uh = a.data + 2 * TAR_BLOCK;
        assert_int_equal(uh[H_SIZE], 0x80);
        int64_t v;
        assert_int_equal(tar_num_get(uh + H_SIZE, W_SIZE, &v), 0);
        assert_true(v == 8LL << 30);
        /* The parser reads the size from the header alone. */
        struct tar_parser *p;
        assert_int_equal(tar_parser_new(&p), 0);
        size_t used;
        const uint8_t *d;
        size_t dn;
        assert_int_equal(tar_parser_feed(p, a.data, a.len, &used, &d, &dn), TAR_EV_ENTRY);
        assert_int_equal(used, a.len);
        assert_true(tar_parser_entry(p)->size == 8ULL << 30);
        assert_int_equal(tar_parser_entry(p)->mtime_nsec, 500000000);
        tar_parser_free(p);
        tar_writer_free(w);
        free(a.data);
}

static void test_writer_refusals(void **state) {
        struct tar_writer *w;
        assert_int_equal(tar_writer_new(&w), 0);
        char *toolong = repeat('a', TAR_NAME_MAX + 1);
        char *comp = repeat('a', TAR_COMPONENT_MAX + 1);
        const struct {
                struct tar_entry e;
                int err;
        } bad[] = {
                { { .type = TAR_FILE, .name = "/etc/passwd" }, -EINVAL },
                { { .type = TAR_FILE, .name = "a/../../b" }, -EINVAL },
                { { .type = TAR_FILE, .name = "" }, -EINVAL },
                { { .type = TAR_FILE, .name = NULL }, -EINVAL },
                { { .type = TAR_FILE, .name = "." }, -EINVAL },
                { { .type = TAR_FILE, .name = toolong }, -ENAMETOOLONG },
                { { .type = TAR_FILE, .name = comp }, -ENAMETOOLONG },
                { { .type = TAR_SYMLINK, .name = "l" }, -EINVAL },
                { { .type = TAR_SYMLINK, .name = "l", .link = "" }, -EINVAL },
                { { .type = TAR_SYMLINK, .name = "l", .link = toolong }, -ENAMETOOLONG },
                { { .type = TAR_HARDLINK, .name = "h", .link = "../x" }, -EINVAL },
                { { .type = TAR_HARDLINK, .name = "h", .link = "/x" }, -EINVAL },
                { { .type = TAR_HARDLINK, .name = "h", .link = "." }, -EINVAL },
                { { .type = TAR_OTHER, .name = "o" }, -EINVAL },
                { { .type = TAR_CHAR, .name = "c", .devmajor = 1u << 21 }, -EOVERFLOW },
                { { .type = TAR_FILE, .name = "f", .mtime_nsec = 1000000000u }, -EINVAL },
                { { .type = TAR_FILE, .name = "f", .uname = toolong }, -ENAMETOOLONG },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                assert_int_equal(tar_writer_add(w, &bad[i].e), bad[i].err);
        uint8_t buf[16];
        assert_int_equal(tar_writer_read(w, buf, sizeof buf), 0);
        assert_int_equal(tar_writer_content_done(w, 1), -EINVAL);
        assert_int_equal(tar_writer_finish(w), 0);
        struct tar_entry ok = { .type = TAR_FILE, .name = "f" };
        assert_int_equal(tar_writer_add(w, &ok), -EINVAL); /* after finish */
        tar_writer_free(w);
        tar_writer_free(NULL);
        free(toolong);
        free(comp);
}

static void test_name_clean(void **state) {
        char out[TAR_NAME_MAX + 2];
        const struct {
                const char *in, *out;
                int err;
        } v[] = {
                { "a", "a", 0 },          { "a/b/", "a/b", 0 },      { "./a//b/./c", "a/b/c", 0 },
                { ".", ".", 0 },          { "./", ".", 0 },          { "././.", ".", 0 },
                { "a/.../b", "a/.../b", 0 }, { "..a/b..", "..a/b..", 0 },
                { "/a", NULL, -EINVAL },  { "..", NULL, -EINVAL },   { "a/../b", NULL, -EINVAL },
                { "a/..", NULL, -EINVAL }, { "", NULL, -EINVAL },    { "//a", NULL, -EINVAL },
        };
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
                int r = tar_name_clean(v[i].in, strlen(v[i].in), out);
                if (v[i].err) {
                        assert_int_equal(r, v[i].err);
                        continue;
                }
                assert_int_equal(r, (int) strlen(v[i].out));
                assert_string_equal(out, v[i].out);
        }
        assert_int_equal(tar_name_clean("a\0b", 3, out), -EINVAL);
}

static void test_numeric_fields(void **state) {
        uint8_t f[12];
        int64_t v;
        assert_true(tar_num_put(f, 8, 07777777));
        assert_memory_equal(f, "7777777", 8);
        assert_false(tar_num_put(f, 8, 010000000));
        assert_int_equal(f[0], 0x80);
        assert_int_equal(tar_num_get(f, 8, &v), 0);
        assert_int_equal(v, 010000000);
        /* Leading spaces, trailing spaces/NULs, all-NUL; old-style "644 \0". */
        assert_int_equal(tar_num_get((const uint8_t *) "  644 \0\0", 8, &v), 0);
        assert_int_equal(v, 0644);
        assert_int_equal(tar_num_get((const uint8_t *) "\0\0\0\0\0\0\0\0", 8, &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(tar_num_get((const uint8_t *) "0000644\0", 8, &v), 0);
        /* Refused: 8 and 9, letters, digits after a terminator, a sign. */
        assert_int_equal(tar_num_get((const uint8_t *) "0000648\0", 8, &v), -EBADMSG);
        assert_int_equal(tar_num_get((const uint8_t *) "00006x4\0", 8, &v), -EBADMSG);
        assert_int_equal(tar_num_get((const uint8_t *) "064 4\0\0\0", 8, &v), -EBADMSG);
        assert_int_equal(tar_num_get((const uint8_t *) "-000644\0", 8, &v), -EBADMSG);
        /* Base-256: negative, and beyond int64. */
        memset(f, 0xff, 12);
        assert_int_equal(tar_num_get(f, 12, &v), 0);
        assert_int_equal(v, -1);
        f[11] = 0xfe;
        assert_int_equal(tar_num_get(f, 12, &v), 0);
        assert_int_equal(v, -2);
        memset(f, 0, 12);
        f[0] = 0x80;
        f[3] = 0x80; /* 2^63 in the low 9 bytes */
        assert_int_equal(tar_num_get(f, 12, &v), -EBADMSG);
        /* An octal value beyond int64. */
        assert_int_equal(tar_num_get((const uint8_t *) "77777777777777777777777", 23, &v), -EBADMSG);
}

/* ---- hostile and broken archives ------------------------------------------------------------- */

/* A hand-made header with @name, @type and content @size, checksummed;
 * @fix lets a test break it after the fact. */
static void header(uint8_t *h, const char *name, char type, uint64_t size, const char *link) {
        memset(h, 0, TAR_BLOCK);
        memcpy(h + H_NAME, name, strnlen(name, W_NAME));
        tar_num_put(h + H_MODE, W_MODE, 0644);
        tar_num_put(h + H_UID, W_UID, 0);
        tar_num_put(h + H_GID, W_GID, 0);
        tar_num_put(h + H_SIZE, W_SIZE, size);
        tar_num_put(h + H_MTIME, W_MTIME, 1);
        h[H_TYPE] = (uint8_t) type;
        if (link)
                memcpy(h + H_LINK, link, strnlen(link, W_LINK));
        memcpy(h + H_MAGIC, "ustar\0" "00", 8);
}

static void sum(uint8_t *h) {
        uint32_t u;
        int32_t s;
        tar_checksum(h, &u, &s);
        snprintf((char *) h + H_CHKSUM, 8, "%06o", u);
        h[H_CHKSUM + 7] = ' ';
}

/* @blocks of @h (already checksummed) + content, then end blocks. */
static struct archive build(const uint8_t *blocks, size_t n_blocks, bool end) {
        struct archive a = { 0 };
        put(&a, blocks, n_blocks * TAR_BLOCK);
        if (end) {
                uint8_t z[2 * TAR_BLOCK] = { 0 };
                put(&a, z, sizeof z);
        }
        return a;
}

static void expect_refusal(const struct archive *a, int err, const char *msg_part) {
        for (int round = 0; round < 3; round++) {
                struct parse_result res;
                parse(a->data, a->len, round == 0 ? 0 : round == 1 ? 1 : 333, &res);
                if (res.err != err || !strstr(res.msg, msg_part))
                        fail_msg("got %d \"%s\", want %d \"%s\"", res.err, res.msg, err, msg_part);
                parse_result_free(&res);
        }
}

static void pax_block(uint8_t *blocks, const char *records, size_t len, char type) {
        header(blocks, "PaxHeaders/x", type, len, NULL);
        sum(blocks);
        memcpy(blocks + TAR_BLOCK, records, len);
}

/* @n blocks, the end blocks, and the parser's verdict on them. */
static void refuse_blocks(const uint8_t *blocks, size_t n, int err, const char *msg_part) {
        struct archive a = build(blocks, n, true);
        expect_refusal(&a, err, msg_part);
        free(a.data);
}

/* One header block, broken by @mutate after (@resum false) or before
 * (@resum true: the checksum is made to match again) its checksum. */
static void refuse_header(const char *name, char type, const char *link, size_t off, const char *bytes, size_t n,
                          bool resum, int err, const char *msg_part) {
        uint8_t b[TAR_BLOCK];
        header(b, name, type, 0, link);
        if (!resum)
                sum(b);
        memcpy(b + off, bytes, n);
        if (resum)
                sum(b);
        refuse_blocks(b, 1, err, msg_part);
}

/* A pax header with @records (@type 'x' or 'g'), then a plain entry @name. */
static void refuse_after_pax(const char *records, size_t len, char type, const char *name, int err,
                             const char *msg_part) {
        uint8_t b[3 * TAR_BLOCK] = { 0 };
        pax_block(b, records, len, type);
        header(b + 2 * TAR_BLOCK, name, '0', 0, NULL);
        sum(b + 2 * TAR_BLOCK);
        refuse_blocks(b, 3, err, msg_part);
}

static void test_hostile_names(void **state) {
        const struct {
                const char *name, *link;
                char type;
                int err;
                const char *msg;
        } v[] = {
                { "../evil", NULL, '0', -EINVAL, "unsafe entry name \"../evil\"" },
                { "a/../../evil", NULL, '0', -EINVAL, "unsafe entry name" },
                { "/etc/passwd", NULL, '0', -EINVAL, "unsafe entry name \"/etc/passwd\"" },
                { "ok", "../outside", '1', -EINVAL, "unsafe hard link target \"../outside\"" },
                { "ok", "/etc/shadow", '1', -EINVAL, "unsafe hard link target" },
                { "ok", "", '1', -EBADMSG, "hard link without a target" },
                { "ok", "", '2', -EBADMSG, "symlink without a target" },
                { ".", NULL, '0', -EINVAL, "entry name \".\" for something other than a directory" },
        };
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
                refuse_header(v[i].name, v[i].type, v[i].link, 0, "", 0, true, v[i].err, v[i].msg);
        /* The same through a pax path record and a GNU long name. */
        refuse_after_pax("19 path=../../evil\n", 19, 'x', "innocent", -EINVAL, "unsafe entry name \"../../evil\"");
        uint8_t b[3 * TAR_BLOCK] = { 0 };
        header(b, "././@LongLink", 'L', 11, NULL);
        sum(b);
        memcpy(b + TAR_BLOCK, "/etc/cron\0", 10);
        header(b + 2 * TAR_BLOCK, "innocent", '0', 0, NULL);
        sum(b + 2 * TAR_BLOCK);
        refuse_blocks(b, 3, -EINVAL, "unsafe entry name \"/etc/cron\"");
        /* NUL inside a pax path. */
        refuse_after_pax("12 path=a\0b\n", 12, 'x', "x", -EINVAL, "pax path holds a NUL byte");
}

static void test_broken_headers(void **state) {
        /* A byte changed after the checksum was made. */
        refuse_header("f", '0', NULL, H_NAME, "g", 1, false, -EBADMSG, "header checksum mismatch");
        refuse_header("f", '0', NULL, H_SIZE, "0000000009x", 11, true, -EBADMSG,
                      "header field size is not a valid number");
        /* No terminator, and a bad digit. */
        refuse_header("f", '0', NULL, H_UID, "12345678", 8, true, -EBADMSG, "header field uid");
        refuse_header("f", '0', NULL, H_MAGIC, "ustar\0" "01", 8, true, -EBADMSG, "bad magic");
        /* Sparse and multi-volume entries. */
        refuse_header("f", 'S', NULL, 0, "", 0, true, -EOPNOTSUPP, "unsupported GNU entry type 'S'");
        refuse_header("f", 'M', NULL, 0, "", 0, true, -EOPNOTSUPP, "unsupported GNU entry type 'M'");
        refuse_after_pax("22 GNU.sparse.major=1\n", 22, 'x', "f", -EOPNOTSUPP, "sparse files");
}

static void test_pax_records(void **state) {
        uint8_t b[3 * TAR_BLOCK];
        struct archive a;
        const struct {
                const char *rec;
                int err;
                const char *msg;
        } bad[] = {
                { "x path=a\n", -EBADMSG, "no length" },
                { "99 path=a\n", -EBADMSG, "length 99 out of bounds" },
                { "3 p\n", -EBADMSG, "out of bounds" },
                { "10 path=ab", -EBADMSG, "no newline" },
                { "9 patha\n\n", -EBADMSG, "no key=value" },
                { "8 =abc\n\n", -EBADMSG, "no key=value" },
                { "11 size=-1\n", -EBADMSG, "pax size is not a number" },
                { "12 size=1x2\n", -EBADMSG, "pax size is not a number" },
                { "29 size=99999999999999999999\n", -EBADMSG, "pax size is not a number" },
                { "18 uid=4294967296\n", -EBADMSG, "pax uid is not a number up to 4294967295" },
                { "13 mtime=1.x\n", -EBADMSG, "pax mtime is not a decimal time" },
                { "123456789 path=a\n", -EBADMSG, "no length" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                refuse_after_pax(bad[i].rec, strlen(bad[i].rec), 'x', "f", bad[i].err, bad[i].msg);
        /* Global headers are checked but not applied; unknown keys and
         * empty values are fine; a pax size overrides the header's. */
        memset(b, 0, sizeof b);
        const char *g = "16 path=ignored\n";
        pax_block(b, g, strlen(g), 'g');
        a = (struct archive) { 0 };
        put(&a, b, 2 * TAR_BLOCK);
        const char *x = "18 SCHILY.foo=bar\n8 path=\n10 size=3\n15 mtime=-1.25\n";
        memset(b, 0, sizeof b);
        pax_block(b, x, strlen(x), 'x');
        put(&a, b, 2 * TAR_BLOCK);
        header(b, "real", '0', 0, NULL);
        sum(b);
        put(&a, b, TAR_BLOCK);
        memset(b, 0, sizeof b);
        memcpy(b, "abc", 3);
        put(&a, b, TAR_BLOCK);
        uint8_t z[2 * TAR_BLOCK] = { 0 };
        put(&a, z, sizeof z);
        struct parse_result res;
        parse(a.data, a.len, 100, &res);
        assert_int_equal(res.err, 0);
        assert_int_equal(res.n, 1);
        assert_string_equal(res.v[0].name, "real");
        assert_int_equal(res.v[0].len, 3);
        assert_memory_equal(res.v[0].content, "abc", 3);
        assert_true(res.v[0].e.mtime == -2);
        assert_int_equal(res.v[0].e.mtime_nsec, 750000000);
        parse_result_free(&res);
        free(a.data);
}

static void test_huge_pax_and_long_names(void **state) {
        uint8_t b[TAR_BLOCK];
        struct archive a;
        /* A pax header that announces more than the bound: refused before
         * any of it is buffered. */
        header(b, "PaxHeaders/x", 'x', TAR_PAX_MAX + 1, NULL);
        sum(b);
        a = build(b, 1, false);
        expect_refusal(&a, -E2BIG, "extended header 'x' of 65537 bytes exceeds 65536");
        free(a.data);
        header(b, "PaxHeaders/g", 'g', 1ULL << 40, NULL);
        sum(b);
        a = build(b, 1, false);
        expect_refusal(&a, -E2BIG, "exceeds");
        free(a.data);
        header(b, "././@LongLink", 'L', TAR_NAME_MAX + 2, NULL);
        sum(b);
        a = build(b, 1, false);
        expect_refusal(&a, -ENAMETOOLONG, "exceeds");
        free(a.data);
        /* A pax path longer than TAR_NAME_MAX. */
        size_t plen = TAR_NAME_MAX + 1;
        char *rec = malloc(plen + 32);
        assert_non_null(rec);
        int n = sprintf(rec, "%zu path=", plen + 11);
        memset(rec + n, 'a', plen);
        rec[n + plen] = '\n';
        size_t rlen = (size_t) n + plen + 1;
        assert_int_equal(rlen, plen + 11);
        a = (struct archive) { 0 };
        header(b, "PaxHeaders/x", 'x', rlen, NULL);
        sum(b);
        put(&a, b, TAR_BLOCK);
        put(&a, rec, rlen);
        uint8_t z[3 * TAR_BLOCK] = { 0 };
        put(&a, z, TAR_BLOCK - rlen % TAR_BLOCK);
        header(b, "f", '0', 0, NULL);
        sum(b);
        put(&a, b, TAR_BLOCK);
        put(&a, z, 2 * TAR_BLOCK);
        expect_refusal(&a, -ENAMETOOLONG, "pax path of 4096 bytes is longer than 4095");
        free(a.data);
        free(rec);
}

static void test_truncation_and_trailers(void **state) {
        struct tar_entry e = { .type = TAR_FILE, .name = "f", .size = 1000, .mode = 0644 };
        uint8_t content[1000] = { 1 };
        struct archive a = { 0 };
        write_archive(&e, (const uint8_t *[]) { content }, 1, &a);
        /* Every cut short of the end is "truncated"; the full one is fine. */
        for (size_t cut = 0; cut < a.len; cut += (cut < 2 * TAR_BLOCK ? 37 : TAR_BLOCK / 2)) {
                struct parse_result res;
                parse(a.data, cut, 200, &res);
                assert_int_equal(res.err, -EBADMSG);
                assert_non_null(strstr(res.msg, "truncated archive"));
                parse_result_free(&res);
        }
        /* Zero padding after the end (a 10240-byte tar record) is fine;
         * anything else is not. */
        size_t full = a.len;
        uint8_t pad[10240] = { 0 };
        put(&a, pad, sizeof pad);
        struct parse_result res;
        parse(a.data, a.len, 999, &res);
        assert_int_equal(res.err, 0);
        parse_result_free(&res);
        a.data[full + 5000] = 'x';
        expect_refusal(&a, -EBADMSG, "data after the end of the archive");
        /* One zero block, then a header: not the end, not an entry. */
        memmove(a.data + full - TAR_BLOCK, a.data, TAR_BLOCK);
        a.len = full;
        expect_refusal(&a, -EBADMSG, "a lone zero block");
        free(a.data);
}

/* Header-only types with a size (some writers put one) carry no data;
 * unknown types are passed on with their content; volume labels vanish. */
/* Append a header (and @content padded to a block, if any). */
static void put_entry(struct archive *a, const char *name, char type, const char *content) {
        uint8_t b[TAR_BLOCK];
        size_t n = content ? strlen(content) : 0;
        header(b, name, type, n, NULL);
        sum(b);
        put(a, b, TAR_BLOCK);
        if (n > 0) {
                memset(b, 0, TAR_BLOCK);
                memcpy(b, content, n);
                put(a, b, TAR_BLOCK);
        }
}

static void test_type_quirks(void **state) {
        uint8_t b[TAR_BLOCK];
        struct archive a = { 0 };
        put_entry(&a, "label", 'V', NULL);
        /* A header-only type with a size: no data follows. */
        header(b, "d", '5', 1024, NULL);
        sum(b);
        put(&a, b, TAR_BLOCK);
        /* An old-style directory (a file type, a trailing '/') with a
         * size: its data is skipped, not content of a size-0 entry. */
        put_entry(&a, "old-dir/", '\0', "dir");
        put_entry(&a, "weird", 'Z', "zzz");
        /* A GNU-format header: its prefix area is not a prefix. */
        header(b, "gnu", '0', 0, NULL);
        memcpy(b + H_MAGIC, "ustar  \0", 8);
        memcpy(b + H_PREFIX, "\x01\x02junk", 6);
        sum(b);
        put(&a, b, TAR_BLOCK);
        /* Signed checksums (old writers) are accepted. */
        header(b, "\xe9t\xe9", '0', 0, NULL);
        uint32_t u;
        int32_t s;
        tar_checksum(b, &u, &s);
        snprintf((char *) b + H_CHKSUM, 8, "%06o", (unsigned) s);
        put(&a, b, TAR_BLOCK);
        uint8_t z[2 * TAR_BLOCK] = { 0 };
        put(&a, z, sizeof z);
        struct parse_result res;
        parse(a.data, a.len, 64, &res);
        if (res.err)
                fail_msg("%s", res.msg);
        assert_int_equal(res.n, 5);
        assert_string_equal(res.v[0].name, "d");
        assert_int_equal(res.v[0].e.type, TAR_DIR);
        assert_true(res.v[0].e.size == 0);
        assert_string_equal(res.v[1].name, "old-dir");
        assert_int_equal(res.v[1].e.type, TAR_DIR);
        assert_true(res.v[1].e.size == 0);
        assert_int_equal(res.v[1].len, 0);
        assert_int_equal(res.v[2].e.type, TAR_OTHER);
        assert_int_equal(res.v[2].len, 3);
        assert_string_equal(res.v[3].name, "gnu");
        assert_string_equal(res.v[4].name, "\xe9t\xe9");
        parse_result_free(&res);
        free(a.data);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip_every_feature),
                cmocka_unit_test(test_writer_header_fields),
                cmocka_unit_test(test_writer_refusals),
                cmocka_unit_test(test_name_clean),
                cmocka_unit_test(test_numeric_fields),
                cmocka_unit_test(test_hostile_names),
                cmocka_unit_test(test_broken_headers),
                cmocka_unit_test(test_pax_records),
                cmocka_unit_test(test_huge_pax_and_long_names),
                cmocka_unit_test(test_truncation_and_trailers),
                cmocka_unit_test(test_type_quirks),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
