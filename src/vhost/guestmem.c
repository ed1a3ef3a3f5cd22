#include "vhost/guestmem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* [a, a + alen) and [b, b + blen) intersect; neither end overflows. */
static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
        return a < b + blen && b < a + alen;
}

/* @start + @len - 1 must not wrap: the last byte has an address. */
static bool range_ok(uint64_t start, uint64_t len) {
        return len > 0 && start <= UINT64_MAX - (len - 1);
}

static int check_new(const struct guestmem *m, uint64_t gpa, uint64_t size, uint64_t uva) {
        if (!range_ok(gpa, size) || !range_ok(uva, size) || size > SIZE_MAX / 2)
                return -EINVAL;
        if (m->n == GUESTMEM_MAX_REGIONS)
                return -ENOSPC;
        /* Ranges ending at the very top of the space would make a + alen
         * wrap in overlap(); the checks above leave them possible only as
         * a last byte at UINT64_MAX, which no front-end uses. */
        if (gpa + (size - 1) == UINT64_MAX || uva + (size - 1) == UINT64_MAX)
                return -EINVAL;
        for (unsigned i = 0; i < m->n; i++)
                if (overlap(gpa, size, m->r[i].gpa, m->r[i].size) || overlap(uva, size, m->r[i].uva, m->r[i].size))
                        return -EINVAL;
        return 0;
}

int guestmem_add_ptr(struct guestmem *m, uint64_t gpa, uint64_t size, uint64_t uva, void *host) {
        int r = check_new(m, gpa, size, uva);
        if (r < 0)
                return r;
        m->r[m->n++] = (struct guestmem_region) { .gpa = gpa, .size = size, .uva = uva, .host = host };
        return 0;
}

int guestmem_map_fd(struct guestmem *m, uint64_t gpa, uint64_t size, uint64_t uva, int fd, uint64_t offset) {
        int r = check_new(m, gpa, size, uva);
        if (r < 0)
                return r;
        if (!range_ok(offset, size) || offset > (uint64_t) INT64_MAX - size)
                return -EINVAL;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        /* A mapping past the end of a file faults with SIGBUS on access:
         * refuse it here rather than die later. Other fd kinds (devices)
         * have no size to compare and mmap decides. */
        if (S_ISREG(st.st_mode) && (uint64_t) st.st_size < offset + size)
                return -EFBIG;
        long page = sysconf(_SC_PAGESIZE);
        uint64_t delta = offset % (uint64_t) page;
        size_t len = (size_t) (size + delta);
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t) (offset - delta));
        if (p == MAP_FAILED)
                return -errno;
        m->r[m->n++] = (struct guestmem_region) {
                .gpa = gpa, .size = size, .uva = uva, .host = (uint8_t *) p + delta, .map = p, .map_len = len,
        };
        return 0;
}

void guestmem_clear(struct guestmem *m) {
        for (unsigned i = 0; i < m->n; i++)
                if (m->r[i].map)
                        (void) munmap(m->r[i].map, m->r[i].map_len);
        m->n = 0;
}

void guestmem_move(struct guestmem *to, struct guestmem *from) {
        guestmem_clear(to);
        *to = *from;
        from->n = 0;
}

/* The region holding @addr (by guest or front-end address) and the bytes
 * of it from @addr on. */
static const struct guestmem_region *find(const struct guestmem *m, uint64_t addr, bool by_uva, uint64_t *ret_off) {
        for (unsigned i = 0; i < m->n; i++) {
                uint64_t base = by_uva ? m->r[i].uva : m->r[i].gpa;
                if (addr >= base && addr - base < m->r[i].size) {
                        *ret_off = addr - base;
                        return &m->r[i];
                }
        }
        return NULL;
}

static void *lookup(const struct guestmem *m, uint64_t addr, uint64_t len, bool by_uva) {
        uint64_t off;
        const struct guestmem_region *r = find(m, addr, by_uva, &off);
        if (!r || len == 0 || len > r->size - off)
                return NULL;
        return r->host + off;
}

void *guestmem_gpa(const struct guestmem *m, uint64_t gpa, uint64_t len) { return lookup(m, gpa, len, false); }

void *guestmem_uva(const struct guestmem *m, uint64_t uva, uint64_t len) { return lookup(m, uva, len, true); }

int guestmem_gpa_iov(const struct guestmem *m, uint64_t gpa, uint64_t len, struct iovec *iov, unsigned max,
                     unsigned *n) {
        if (len > 0 && !range_ok(gpa, len))
                return -EFAULT;
        while (len > 0) {
                uint64_t off;
                const struct guestmem_region *r = find(m, gpa, false, &off);
                if (!r)
                        return -EFAULT;
                if (*n == max)
                        return -E2BIG;
                uint64_t piece = r->size - off < len ? r->size - off : len;
                iov[(*n)++] = (struct iovec) { .iov_base = r->host + off, .iov_len = (size_t) piece };
                gpa += piece;
                len -= piece;
        }
        return 0;
}
