/* The tar push parser (tar.h): archive bytes in, in any split; entries
 * and content slices out. Everything it keeps is bounded: one header
 * block, one extended header (pax records up to TAR_PAX_MAX, a GNU long
 * name up to TAR_NAME_MAX) and the names it produced. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "tar-internal.h"
#include "tar.h"

enum pstate {
        P_HEADER,  /* collecting a header block */
        P_ZERO2,   /* one zero block seen: the next must be zero too */
        P_EXT,     /* collecting an extended header's data */
        P_CONTENT, /* handing out the entry's content */
        P_SKIP,    /* content nobody wants (volume labels, dumpdirs) */
        P_PAD,     /* padding to the next block */
        P_END,     /* after the end blocks: zeros only */
        P_ERROR,
};

/* Values a pax header ('x') or a GNU long name/link ('L', 'K') sets for
 * the next entry. */
struct pending {
        bool path, link, size, uid, gid, uname, gname, mtime;
        uint64_t size_v;
        uint32_t uid_v, gid_v;
        int64_t mtime_s;
        uint32_t mtime_ns;
        size_t path_len, link_len;
        char path_v[TAR_NAME_MAX + 1];
        char link_v[TAR_NAME_MAX + 1];
        char uname_v[TAR_OWNER_MAX + 1];
        char gname_v[TAR_OWNER_MAX + 1];
};

struct tar_parser {
        enum pstate st;
        int err;
        size_t fill;        /* bytes in hdr */
        uint64_t left;      /* content or extended data still to come */
        size_t pad;
        uint64_t offset;    /* bytes consumed */
        uint64_t hdr_at;    /* offset of the current header */
        uint8_t ext_type;   /* 'x', 'g', 'L', 'K' while in P_EXT */
        size_t ext_len;
        uint8_t *ext;       /* TAR_PAX_MAX, allocated on first use */
        struct tar_entry e;
        struct pending pend;
        uint8_t hdr[TAR_BLOCK];
        char name[TAR_NAME_MAX + 2];
        char link[TAR_NAME_MAX + 2];
        char uname[TAR_OWNER_MAX + 1];
        char gname[TAR_OWNER_MAX + 1];
        char msg[320];
};

int tar_parser_new(struct tar_parser **ret) {
        struct tar_parser *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

void tar_parser_free(struct tar_parser *p) {
        if (!p)
                return;
        free(p->ext);
        free(p);
}

const struct tar_entry *tar_parser_entry(const struct tar_parser *p) {
        return &p->e;
}

const char *tar_parser_error(const struct tar_parser *p) {
        return p->msg;
}

uint64_t tar_parser_offset(const struct tar_parser *p) {
        return p->offset;
}

__attribute__((format(printf, 3, 4))) static int fail(struct tar_parser *p, int err, const char *fmt, ...) {
        va_list ap;
        int n = snprintf(p->msg, sizeof p->msg, "archive byte %llu: ", (unsigned long long) p->hdr_at);
        va_start(ap, fmt);
        vsnprintf(p->msg + n, sizeof p->msg - (size_t) n, fmt, ap);
        va_end(ap);
        p->st = P_ERROR;
        p->err = err;
        return err;
}

/* A NUL-terminated field of at most @w bytes, as a length. */
static size_t field_len(const uint8_t *f, size_t w) {
        const uint8_t *z = memchr(f, '\0', w);
        return z ? (size_t) (z - f) : w;
}

static size_t padding(uint64_t size) {
        return (size_t) ((TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK);
}

/* ---- pax records -------------------------------------------------------------------- */

/* A decimal (optionally negative, with a fraction when @frac) within
 * int64; the fraction is returned in nanoseconds (digits past 9 are
 * dropped). */
static bool parse_decimal(const char *s, size_t n, bool neg_ok, bool frac, int64_t *ret_sec, uint32_t *ret_ns) {
        size_t i = 0;
        bool neg = false;
        if (neg_ok && n > 0 && s[0] == '-') {
                neg = true;
                i++;
        }
        uint64_t v = 0;
        size_t digits = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
                if (v > (UINT64_C(1) << 63) / 10)
                        return false;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        if (digits == 0 || v > (uint64_t) INT64_MAX)
                return false;
        uint32_t ns = 0;
        if (frac && i < n && s[i] == '.') {
                size_t fd = 0;
                for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, fd++)
                        if (fd < 9)
                                ns = ns * 10 + (uint32_t) (s[i] - '0');
                for (; fd < 9; fd++)
                        ns *= 10;
        }
        if (i != n)
                return false;
        int64_t sec = (int64_t) v;
        if (neg && ns > 0) {
                /* -1.5 is -2 s + 0.5 s */
                if (sec == INT64_MAX)
                        return false;
                sec = -sec - 1;
                ns = 1000000000u - ns;
        } else if (neg)
                sec = -sec;
        *ret_sec = sec;
        if (ret_ns)
                *ret_ns = ns;
        return true;
}

static int pax_string(struct tar_parser *p, const char *key, const char *v, size_t n, size_t max, char *out,
                      size_t *ret_len, bool *set) {
        if (n == 0) {
                /* An empty value cancels the keyword. */
                *set = false;
                return 0;
        }
        if (memchr(v, '\0', n))
                return fail(p, -EINVAL, "pax %s holds a NUL byte", key);
        if (n > max)
                return fail(p, -ENAMETOOLONG, "pax %s of %zu bytes is longer than %zu", key, n, max);
        memcpy(out, v, n);
        out[n] = '\0';
        if (ret_len)
                *ret_len = n;
        *set = true;
        return 0;
}

static int pax_number(struct tar_parser *p, const char *key, const char *v, size_t n, int64_t max,
                      int64_t *ret, bool *set) {
        if (n == 0) {
                *set = false;
                return 0;
        }
        if (!parse_decimal(v, n, false, false, ret, NULL) || *ret > max)
                return fail(p, -EBADMSG, "pax %s is not a number up to %lld", key, (long long) max);
        *set = true;
        return 0;
}

static int pax_record(struct tar_parser *p, const char *key, size_t klen, const char *v, size_t n, bool apply) {
        struct pending *d = &p->pend;
        int64_t x = 0;
        int r = 0;

#define KEY(s) (klen == sizeof(s) - 1 && memcmp(key, s, klen) == 0)
        if (klen >= 11 && memcmp(key, "GNU.sparse.", 11) == 0)
                return fail(p, -EOPNOTSUPP, "sparse files (pax GNU.sparse) are not supported");
        if (!apply)
                return 0; /* a global header: checked, not applied */
        if (KEY("path"))
                r = pax_string(p, "path", v, n, TAR_NAME_MAX, d->path_v, &d->path_len, &d->path);
        else if (KEY("linkpath"))
                r = pax_string(p, "linkpath", v, n, TAR_NAME_MAX, d->link_v, &d->link_len, &d->link);
        else if (KEY("uname"))
                r = pax_string(p, "uname", v, n, TAR_OWNER_MAX, d->uname_v, NULL, &d->uname);
        else if (KEY("gname"))
                r = pax_string(p, "gname", v, n, TAR_OWNER_MAX, d->gname_v, NULL, &d->gname);
        else if (KEY("size")) {
                r = pax_number(p, "size", v, n, INT64_MAX, &x, &d->size);
                d->size_v = (uint64_t) x;
        } else if (KEY("uid")) {
                r = pax_number(p, "uid", v, n, UINT32_MAX, &x, &d->uid);
                d->uid_v = (uint32_t) x;
        } else if (KEY("gid")) {
                r = pax_number(p, "gid", v, n, UINT32_MAX, &x, &d->gid);
                d->gid_v = (uint32_t) x;
        } else if (KEY("mtime")) {
                if (n == 0)
                        d->mtime = false;
                else if (!parse_decimal(v, n, true, true, &d->mtime_s, &d->mtime_ns))
                        return fail(p, -EBADMSG, "pax mtime is not a decimal time");
                else
                        d->mtime = true;
        }
#undef KEY
        /* Other keywords (atime, ctime, comment, SCHILY.*, ...) are ignored. */
        return r;
}

/* "LEN key=value\n" records, LEN counting the whole record. */
static int parse_pax(struct tar_parser *p, bool apply) {
        const char *b = (const char *) p->ext;
        size_t n = p->ext_len, at = 0;

        while (at < n) {
                size_t i = at, len = 0;
                while (i < n && b[i] >= '0' && b[i] <= '9' && i - at < 8)
                        len = len * 10 + (size_t) (b[i++] - '0');
                if (i == at || i >= n || b[i] != ' ')
                        return fail(p, -EBADMSG, "pax record at %zu: no length", at);
                if (len < i - at + 4 || len > n - at)
                        return fail(p, -EBADMSG, "pax record at %zu: length %zu out of bounds", at, len);
                const char *rec = b + at, *end = rec + len;
                if (end[-1] != '\n')
                        return fail(p, -EBADMSG, "pax record at %zu: no newline at its end", at);
                const char *key = b + i + 1;
                const char *eq = memchr(key, '=', (size_t) (end - key));
                if (!eq || eq == key)
                        return fail(p, -EBADMSG, "pax record at %zu: no key=value", at);
                int r = pax_record(p, key, (size_t) (eq - key), eq + 1, (size_t) (end - 1 - (eq + 1)), apply);
                if (r < 0)
                        return r;
                at += len;
        }
        return 0;
}

/* The data of an extended header is complete. */
static int ext_done(struct tar_parser *p) {
        struct pending *d = &p->pend;
        switch (p->ext_type) {
        case 'x':
                return parse_pax(p, true);
        case 'g':
                return parse_pax(p, false);
        case 'L':
        case 'K': {
                /* GNU long name: the name and a NUL. */
                size_t n = field_len(p->ext, p->ext_len);
                if (n == 0)
                        return fail(p, -EBADMSG, "empty GNU long name");
                if (n > TAR_NAME_MAX)
                        return fail(p, -ENAMETOOLONG, "GNU long name of %zu bytes", n);
                char *out = p->ext_type == 'L' ? d->path_v : d->link_v;
                memcpy(out, p->ext, n);
                out[n] = '\0';
                if (p->ext_type == 'L')
                        d->path = true, d->path_len = n;
                else
                        d->link = true, d->link_len = n;
                return 0;
        }
        }
        return fail(p, -EBADMSG, "unexpected extended header");
}

/* ---- headers ------------------------------------------------------------------------------- */

static int num(struct tar_parser *p, size_t off, size_t w, const char *what, int64_t lo, int64_t hi, int64_t *ret) {
        if (tar_num_get(p->hdr + off, w, ret) < 0)
                return fail(p, -EBADMSG, "header field %s is not a valid number", what);
        if (*ret < lo || *ret > hi)
                return fail(p, -EBADMSG, "header field %s out of range", what);
        return 0;
}

static int build_name(struct tar_parser *p, bool gnu, enum tar_type *type) {
        const struct pending *d = &p->pend;
        char raw[TAR_NAME_MAX + 2];
        size_t len;

        if (d->path) {
                memcpy(raw, d->path_v, d->path_len);
                len = d->path_len;
        } else {
                size_t pl = gnu ? 0 : field_len(p->hdr + H_PREFIX, W_PREFIX);
                size_t nl = field_len(p->hdr + H_NAME, W_NAME);
                len = 0;
                if (pl > 0) {
                        memcpy(raw, p->hdr + H_PREFIX, pl);
                        raw[pl] = '/';
                        len = pl + 1;
                }
                memcpy(raw + len, p->hdr + H_NAME, nl);
                len += nl;
        }
        /* Old archives mark directories with a trailing '/' only. */
        if (*type == TAR_FILE && len > 0 && raw[len - 1] == '/')
                *type = TAR_DIR;
        int r = tar_name_clean(raw, len, p->name);
        if (r == -ENAMETOOLONG)
                return fail(p, r, "entry name too long");
        if (r < 0)
                return fail(p, r, "unsafe entry name \"%.*s\" (absolute, \"..\" or empty)", (int) (len < 200 ? len : 200),
                            raw);
        if (*type != TAR_DIR && strcmp(p->name, ".") == 0)
                return fail(p, -EINVAL, "entry name \".\" for something other than a directory");
        return 0;
}

static int build_link(struct tar_parser *p, enum tar_type type) {
        const struct pending *d = &p->pend;
        const char *raw = d->link ? d->link_v : (const char *) p->hdr + H_LINK;
        size_t len = d->link ? d->link_len : field_len(p->hdr + H_LINK, W_LINK);

        if (len == 0)
                return fail(p, -EBADMSG, "%s without a target", type == TAR_SYMLINK ? "symlink" : "hard link");
        if (type == TAR_SYMLINK) {
                memcpy(p->link, raw, len);
                p->link[len] = '\0';
                return 0;
        }
        int r = tar_name_clean(raw, len, p->link);
        if (r == -ENAMETOOLONG)
                return fail(p, r, "hard link target too long");
        if (r < 0 || strcmp(p->link, ".") == 0)
                return fail(p, -EINVAL, "unsafe hard link target \"%.*s\"", (int) (len < 200 ? len : 200), raw);
        return 0;
}

static void owner(const uint8_t *f, bool set, const char *v, char *out) {
        if (set) {
                strcpy(out, v);
                return;
        }
        size_t n = field_len(f, W_UNAME);
        memcpy(out, f, n);
        out[n] = '\0';
}

/* A complete, non-zero header block. Returns an event or an error. */
static int header(struct tar_parser *p) {
        const uint8_t *h = p->hdr;
        struct pending *d = &p->pend;
        int64_t v, size, mode, uid, gid, mtime, dmaj, dmin;
        uint32_t u;
        int32_t s;
        int r;

        bool gnu = memcmp(h + H_MAGIC, "ustar  \0", 8) == 0;
        if (!gnu && memcmp(h + H_MAGIC, "ustar\0" "00", 8) != 0)
                return fail(p, -EBADMSG, "not a ustar header (bad magic)");
        if ((r = num(p, H_CHKSUM, W_CHKSUM, "chksum", 0, INT32_MAX, &v)) < 0)
                return r;
        tar_checksum(h, &u, &s);
        if (v != (int64_t) u && v != (int64_t) s)
                return fail(p, -EBADMSG, "header checksum mismatch");
        if ((r = num(p, H_SIZE, W_SIZE, "size", 0, INT64_MAX, &size)) < 0)
                return r;

        uint8_t t = h[H_TYPE];
        switch (t) {
        case 'x':
        case 'g':
        case 'L':
        case 'K': {
                uint64_t max = t == 'x' || t == 'g' ? TAR_PAX_MAX : TAR_NAME_MAX + 1;
                if ((uint64_t) size > max)
                        return fail(p, t == 'x' || t == 'g' ? -E2BIG : -ENAMETOOLONG,
                                    "extended header '%c' of %lld bytes exceeds %llu", t, (long long) size,
                                    (unsigned long long) max);
                if (!p->ext && !(p->ext = malloc(TAR_PAX_MAX)))
                        return fail(p, -ENOMEM, "out of memory");
                p->ext_type = t;
                p->ext_len = 0;
                p->left = (uint64_t) size;
                p->pad = padding((uint64_t) size);
                p->st = P_EXT;
                if (size == 0) {
                        p->st = P_HEADER;
                        r = ext_done(p);
                        if (r < 0)
                                return r;
                }
                return TAR_EV_MORE;
        }
        case 'S':
        case 'M':
        case 'N':
                return fail(p, -EOPNOTSUPP, "unsupported GNU entry type '%c' (sparse, multi-volume, old long names)",
                            t);
        case 'V':
                /* A volume label: no entry. */
                p->left = (uint64_t) size;
                p->pad = padding((uint64_t) size);
                p->st = size ? P_SKIP : p->pad ? P_PAD : P_HEADER;
                return TAR_EV_MORE;
        }

        enum tar_type type;
        bool data = false; /* whether the size is content that follows */
        switch (t) {
        case '0':
        case '\0':
        case '7':
                type = TAR_FILE;
                data = true;
                break;
        case '1':
                type = TAR_HARDLINK;
                break;
        case '2':
                type = TAR_SYMLINK;
                break;
        case '3':
                type = TAR_CHAR;
                break;
        case '4':
                type = TAR_BLOCK_DEV;
                break;
        case '5':
                type = TAR_DIR;
                break;
        case '6':
                type = TAR_FIFO;
                break;
        case 'D':
                /* GNU dumpdir: a directory whose data lists names. */
                type = TAR_DIR;
                data = true;
                break;
        default:
                /* POSIX: unknown types read as regular files; we pass them
                 * on for the caller to skip. */
                type = TAR_OTHER;
                data = true;
        }
        if (d->size)
                size = (int64_t) d->size_v;
        if ((r = num(p, H_MODE, W_MODE, "mode", 0, INT32_MAX, &mode)) < 0 ||
            (r = num(p, H_UID, W_UID, "uid", 0, UINT32_MAX, &uid)) < 0 ||
            (r = num(p, H_GID, W_GID, "gid", 0, UINT32_MAX, &gid)) < 0 ||
            (r = num(p, H_MTIME, W_MTIME, "mtime", INT64_MIN, INT64_MAX, &mtime)) < 0 ||
            (r = num(p, H_DEVMAJOR, W_DEVMAJOR, "devmajor", 0, UINT32_MAX, &dmaj)) < 0 ||
            (r = num(p, H_DEVMINOR, W_DEVMINOR, "devminor", 0, UINT32_MAX, &dmin)) < 0)
                return r;
        if ((r = build_name(p, gnu, &type)) < 0)
                return r;
        if ((type == TAR_SYMLINK || type == TAR_HARDLINK) && (r = build_link(p, type)) < 0)
                return r;
        owner(h + H_UNAME, d->uname, d->uname_v, p->uname);
        owner(h + H_GNAME, d->gname, d->gname_v, p->gname);

        p->e = (struct tar_entry) {
                .type = type,
                .name = p->name,
                .link = type == TAR_SYMLINK || type == TAR_HARDLINK ? p->link : NULL,
                .size = type == TAR_FILE || type == TAR_OTHER ? (uint64_t) size : 0,
                .mode = (uint32_t) mode & 07777,
                .uid = d->uid ? d->uid_v : (uint32_t) uid,
                .gid = d->gid ? d->gid_v : (uint32_t) gid,
                .uname = p->uname,
                .gname = p->gname,
                .mtime = d->mtime ? d->mtime_s : mtime,
                .mtime_nsec = d->mtime ? d->mtime_ns : 0,
                .devmajor = (uint32_t) dmaj,
                .devminor = (uint32_t) dmin,
        };
        *d = (struct pending) { 0 };

        /* Header-only types carry no data whatever their size says; the
         * data of a directory (GNU dumpdir, an old-style directory with a
         * size) is skipped, never handed out. */
        uint64_t follows = data ? (uint64_t) size : 0;
        p->left = follows;
        p->pad = padding(follows);
        if (follows > 0)
                p->st = type == TAR_FILE || type == TAR_OTHER ? P_CONTENT : P_SKIP;
        else
                p->st = p->pad ? P_PAD : P_HEADER;
        return TAR_EV_ENTRY;
}

static bool all_zero(const uint8_t *b, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (b[i])
                        return false;
        return true;
}

/* ---- the push interface ---------------------------------------------------------------------- */

int tar_parser_feed(struct tar_parser *p, const uint8_t *data, size_t len, size_t *ret_used,
                    const uint8_t **ret_data, size_t *ret_len) {
        size_t used = 0;
        int ev = TAR_EV_MORE;

        while (used < len && ev == TAR_EV_MORE && p->st != P_ERROR) {
                const uint8_t *in = data + used;
                size_t avail = len - used, k;

                switch (p->st) {
                case P_HEADER:
                case P_ZERO2:
                        if (p->fill == 0)
                                p->hdr_at = p->offset;
                        k = MIN(TAR_BLOCK - p->fill, avail);
                        memcpy(p->hdr + p->fill, in, k);
                        p->fill += k;
                        used += k;
                        p->offset += k;
                        if (p->fill < TAR_BLOCK)
                                break;
                        p->fill = 0;
                        if (all_zero(p->hdr, TAR_BLOCK)) {
                                if (p->st == P_ZERO2) {
                                        p->st = P_END;
                                        ev = TAR_EV_END;
                                } else
                                        p->st = P_ZERO2;
                                break;
                        }
                        if (p->st == P_ZERO2) {
                                fail(p, -EBADMSG, "a lone zero block inside the archive");
                                break;
                        }
                        ev = header(p);
                        break;
                case P_EXT:
                        k = (size_t) MIN(p->left, (uint64_t) avail);
                        memcpy(p->ext + p->ext_len, in, k);
                        p->ext_len += k;
                        p->left -= k;
                        used += k;
                        p->offset += k;
                        if (p->left > 0)
                                break;
                        p->st = p->pad ? P_PAD : P_HEADER;
                        if (ext_done(p) < 0)
                                ev = p->err;
                        break;
                case P_CONTENT:
                        k = (size_t) MIN(p->left, (uint64_t) avail);
                        *ret_data = in;
                        *ret_len = k;
                        p->left -= k;
                        used += k;
                        p->offset += k;
                        if (p->left == 0)
                                p->st = p->pad ? P_PAD : P_HEADER;
                        ev = TAR_EV_DATA;
                        break;
                case P_SKIP:
                        k = (size_t) MIN(p->left, (uint64_t) avail);
                        used += k;
                        p->offset += k;
                        p->left -= k;
                        if (p->left == 0)
                                p->st = p->pad ? P_PAD : P_HEADER;
                        break;
                case P_PAD:
                        k = MIN(p->pad, avail);
                        used += k;
                        p->offset += k;
                        p->pad -= k;
                        if (p->pad == 0)
                                p->st = P_HEADER;
                        break;
                case P_END:
                        if (!all_zero(in, avail)) {
                                p->hdr_at = p->offset;
                                fail(p, -EBADMSG, "data after the end of the archive");
                                break;
                        }
                        used += avail;
                        p->offset += avail;
                        break;
                case P_ERROR:
                        break;
                }
                if (ev < 0)
                        break;
        }
        if (p->st == P_ERROR)
                return p->err;
        *ret_used = used;
        return ev;
}

int tar_parser_finish(struct tar_parser *p) {
        if (p->st == P_ERROR)
                return p->err;
        if (p->st == P_END)
                return 0;
        p->hdr_at = p->offset;
        return fail(p, -EBADMSG, "truncated archive (no end blocks)");
}
