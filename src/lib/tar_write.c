/* The tar writer: entries in, archive bytes out (tar.h). Headers are built
 * whole into a small queue; content never passes through here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tar-internal.h"
#include "tar.h"

/* pax records: the longest name and link target, owner names, numbers. */
#define REC_MAX (2 * (TAR_NAME_MAX + 32) + 2 * (TAR_OWNER_MAX + 32) + 256)
/* What may be queued at once: a pax header block, its records padded, the
 * ustar header, and the end blocks behind them. */
#define QUEUE_MAX (TAR_BLOCK + (REC_MAX + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK + TAR_BLOCK + 2 * TAR_BLOCK)

struct tar_writer {
        size_t q_off, q_len;
        uint64_t due;    /* content bytes the caller still owes */
        size_t pad;      /* zeros after the content */
        bool finished;
        char name[TAR_NAME_MAX + 3]; /* normalised name, a '/' for directories */
        char link[TAR_NAME_MAX + 2];
        char rec[REC_MAX]; /* pax records */
        size_t rec_len;
        uint8_t q[QUEUE_MAX];
};

int tar_writer_new(struct tar_writer **ret) {
        struct tar_writer *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        *ret = w;
        return 0;
}

void tar_writer_free(struct tar_writer *w) {
        free(w);
}

static size_t decimal_len(uint64_t v) {
        size_t n = 1;
        while (v >= 10) {
                v /= 10;
                n++;
        }
        return n;
}

/* One pax record, "LEN key=value\n", where LEN counts the whole record
 * including its own digits. */
static void add_record(struct tar_writer *w, const char *key, const char *value, size_t vlen) {
        size_t base = strlen(key) + vlen + 3; /* ' ', '=', '\n' */
        size_t total = base + decimal_len(base);
        if (decimal_len(total) != decimal_len(base))
                total++;
        char *p = w->rec + w->rec_len;
        int k = sprintf(p, "%zu %s=", total, key);
        memcpy(p + k, value, vlen);
        p[k + vlen] = '\n';
        w->rec_len += total;
}

static void add_record_u64(struct tar_writer *w, const char *key, uint64_t v) {
        char t[24];
        int n = snprintf(t, sizeof t, "%llu", (unsigned long long) v);
        add_record(w, key, t, (size_t) n);
}

/* Seconds and nanoseconds as a decimal: -1.5 s is sec -2, nsec 5e8. */
static void add_record_time(struct tar_writer *w, const char *key, int64_t sec, uint32_t nsec) {
        char t[48];
        int n;
        if (sec < 0 && nsec > 0)
                n = snprintf(t, sizeof t, "-%llu.%09u", (unsigned long long) (-(sec + 1)), 1000000000u - nsec);
        else if (sec < 0)
                n = snprintf(t, sizeof t, "-%llu", (unsigned long long) -(uint64_t) sec);
        else if (nsec > 0)
                n = snprintf(t, sizeof t, "%lld.%09u", (long long) sec, nsec);
        else
                n = snprintf(t, sizeof t, "%lld", (long long) sec);
        add_record(w, key, t, (size_t) n);
}

static void put_str(uint8_t *f, size_t w, const char *s, size_t n) {
        memcpy(f, s, n < w ? n : w);
}

static void seal(uint8_t *h) {
        memcpy(h + H_MAGIC, "ustar\0" "00", 8);
        uint32_t u;
        int32_t s;
        tar_checksum(h, &u, &s);
        snprintf((char *) h + H_CHKSUM, W_CHKSUM, "%06o", u);
        h[H_CHKSUM + 7] = ' ';
}

/* The ustar name/prefix split: the name goes in whole if it fits, else
 * cut at a '/' so that the prefix takes <= 155 bytes and the rest <= 100.
 * Returns false when no split fits (a pax path record is needed). */
static bool put_name(uint8_t *h, const char *name, size_t len) {
        if (len <= W_NAME) {
                put_str(h + H_NAME, W_NAME, name, len);
                return true;
        }
        size_t lo = len - W_NAME - 1;
        for (size_t i = lo; i <= W_PREFIX && i < len; i++) {
                if (name[i] != '/')
                        continue;
                put_str(h + H_PREFIX, W_PREFIX, name, i);
                put_str(h + H_NAME, W_NAME, name + i + 1, len - i - 1);
                return true;
        }
        /* Readers without pax see a truncated name. */
        put_str(h + H_NAME, W_NAME, name, W_NAME);
        return false;
}

static const char typeflag[] = {
        [TAR_FILE] = '0', [TAR_DIR] = '5',       [TAR_SYMLINK] = '2', [TAR_HARDLINK] = '1',
        [TAR_CHAR] = '3', [TAR_BLOCK_DEV] = '4', [TAR_FIFO] = '6',
};

static int check_entry(struct tar_writer *w, const struct tar_entry *e, size_t *ret_name_len, size_t *ret_link_len) {
        if (!e->name || e->type >= TAR_OTHER)
                return -EINVAL;
        int n = tar_name_clean(e->name, strlen(e->name), w->name);
        if (n < 0)
                return n;
        if (e->type == TAR_DIR && strcmp(w->name, ".") != 0) {
                if (n + 1 > TAR_NAME_MAX)
                        return -ENAMETOOLONG;
                w->name[n++] = '/';
                w->name[n] = '\0';
        } else if (e->type != TAR_DIR && strcmp(w->name, ".") == 0)
                return -EINVAL;
        *ret_name_len = (size_t) n;
        *ret_link_len = 0;
        if (e->type == TAR_SYMLINK) {
                size_t l = e->link ? strlen(e->link) : 0;
                if (l == 0)
                        return -EINVAL;
                if (l > TAR_NAME_MAX)
                        return -ENAMETOOLONG;
                memcpy(w->link, e->link, l + 1);
                *ret_link_len = l;
        } else if (e->type == TAR_HARDLINK) {
                if (!e->link)
                        return -EINVAL;
                int l = tar_name_clean(e->link, strlen(e->link), w->link);
                if (l < 0)
                        return l;
                if (strcmp(w->link, ".") == 0)
                        return -EINVAL;
                *ret_link_len = (size_t) l;
        }
        if (e->uname && strlen(e->uname) > TAR_OWNER_MAX)
                return -ENAMETOOLONG;
        if (e->gname && strlen(e->gname) > TAR_OWNER_MAX)
                return -ENAMETOOLONG;
        if (e->mtime_nsec >= 1000000000u)
                return -EINVAL;
        return 0;
}

static void queue(struct tar_writer *w, const void *p, size_t n) {
        memcpy(w->q + w->q_len, p, n);
        w->q_len += n;
}

static void queue_zeros(struct tar_writer *w, size_t n) {
        memset(w->q + w->q_len, 0, n);
        w->q_len += n;
}

int tar_writer_add(struct tar_writer *w, const struct tar_entry *e) {
        size_t name_len, link_len;
        uint8_t h[TAR_BLOCK] = { 0 };

        if (w->finished)
                return -EINVAL;
        if (w->due > 0 || w->q_off < w->q_len)
                return -EBUSY;
        int r = check_entry(w, e, &name_len, &link_len);
        if (r < 0)
                return r;

        w->rec_len = 0;
        if (!put_name(h, w->name, name_len))
                add_record(w, "path", w->name, name_len);
        if (link_len > W_LINK)
                add_record(w, "linkpath", w->link, link_len);
        put_str(h + H_LINK, W_LINK, w->link, link_len);

        uint64_t size = e->type == TAR_FILE ? e->size : 0;
        tar_num_put(h + H_MODE, W_MODE, e->mode & 07777);
        if (!tar_num_put(h + H_UID, W_UID, e->uid))
                add_record_u64(w, "uid", e->uid);
        if (!tar_num_put(h + H_GID, W_GID, e->gid))
                add_record_u64(w, "gid", e->gid);
        if (!tar_num_put(h + H_SIZE, W_SIZE, size))
                add_record_u64(w, "size", size);
        /* Seconds in the field when they fit it; pax for the rest. */
        bool fits = e->mtime >= 0 && tar_num_put(h + H_MTIME, W_MTIME, (uint64_t) e->mtime);
        if (e->mtime < 0)
                tar_num_put(h + H_MTIME, W_MTIME, 0);
        if (!fits || e->mtime_nsec > 0)
                add_record_time(w, "mtime", e->mtime, e->mtime_nsec);
        h[H_TYPE] = (uint8_t) typeflag[e->type];
        const char *owner[2] = { e->uname, e->gname };
        static const char *const owner_key[2] = { "uname", "gname" };
        static const size_t owner_off[2] = { H_UNAME, H_GNAME };
        for (int i = 0; i < 2; i++) {
                size_t l = owner[i] ? strlen(owner[i]) : 0;
                if (l < W_UNAME)
                        put_str(h + owner_off[i], W_UNAME, owner[i] ? owner[i] : "", l);
                else
                        add_record(w, owner_key[i], owner[i], l);
        }
        bool dev = e->type == TAR_CHAR || e->type == TAR_BLOCK_DEV;
        if (!tar_num_put(h + H_DEVMAJOR, W_DEVMAJOR, dev ? e->devmajor : 0) ||
            !tar_num_put(h + H_DEVMINOR, W_DEVMINOR, dev ? e->devminor : 0))
                return -EOVERFLOW;
        seal(h);

        w->q_off = w->q_len = 0;
        if (w->rec_len > 0) {
                /* The pax header's own name: harmless wherever a reader
                 * without pax support puts it. */
                uint8_t x[TAR_BLOCK] = { 0 };
                const char *base = strrchr(w->name, '/');
                base = base && base[1] ? base + 1 : w->name;
                char xname[W_NAME + 1];
                int xn = snprintf(xname, sizeof xname, "PaxHeaders/%.80s", base);
                put_str(x + H_NAME, W_NAME, xname, (size_t) xn);
                /* A trailing '/' (directory) would make it look like one. */
                if (x[H_NAME + xn - 1] == '/')
                        x[H_NAME + xn - 1] = '\0';
                tar_num_put(x + H_MODE, W_MODE, 0644);
                tar_num_put(x + H_UID, W_UID, 0);
                tar_num_put(x + H_GID, W_GID, 0);
                tar_num_put(x + H_SIZE, W_SIZE, w->rec_len);
                memcpy(x + H_MTIME, h + H_MTIME, W_MTIME);
                tar_num_put(x + H_DEVMAJOR, W_DEVMAJOR, 0);
                tar_num_put(x + H_DEVMINOR, W_DEVMINOR, 0);
                x[H_TYPE] = 'x';
                seal(x);
                queue(w, x, TAR_BLOCK);
                queue(w, w->rec, w->rec_len);
                queue_zeros(w, (TAR_BLOCK - w->rec_len % TAR_BLOCK) % TAR_BLOCK);
        }
        queue(w, h, TAR_BLOCK);
        w->due = size;
        w->pad = (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
        return 0;
}

size_t tar_writer_read(struct tar_writer *w, uint8_t *out, size_t n) {
        size_t k = w->q_len - w->q_off;
        if (k > n)
                k = n;
        memcpy(out, w->q + w->q_off, k);
        w->q_off += k;
        if (w->q_off == w->q_len)
                w->q_off = w->q_len = 0;
        return k;
}

uint64_t tar_writer_content_due(const struct tar_writer *w) {
        return w->due;
}

int tar_writer_content_done(struct tar_writer *w, uint64_t n) {
        if (n > w->due || (n > 0 && w->q_off < w->q_len))
                return -EINVAL;
        w->due -= n;
        if (w->due == 0 && w->pad > 0) {
                queue_zeros(w, w->pad);
                w->pad = 0;
        }
        return 0;
}

int tar_writer_finish(struct tar_writer *w) {
        if (w->due > 0)
                return -EBUSY;
        if (!w->finished) {
                queue_zeros(w, 2 * TAR_BLOCK);
                w->finished = true;
        }
        return 0;
}

bool tar_writer_done(const struct tar_writer *w) {
        return w->finished && w->q_off == w->q_len;
}
