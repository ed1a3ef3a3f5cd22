/* The guest's memory as the vhost-user front-end shares it: up to eight
 * regions, each an fd the back-end maps, known by its guest-physical
 * address (what descriptors hold) and by the front-end's own virtual
 * address (what vring addresses hold). Every translation checks that the
 * whole range lies inside mapped memory: a guest cannot name a byte the
 * back-end did not map. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define GUESTMEM_MAX_REGIONS 8

struct guestmem_region {
        uint64_t gpa;           /* guest-physical start */
        uint64_t size;
        uint64_t uva;           /* front-end virtual start */
        uint8_t *host;          /* our mapping of gpa */
        void *map;              /* what to munmap (NULL: not ours) */
        size_t map_len;
};

struct guestmem {
        struct guestmem_region r[GUESTMEM_MAX_REGIONS];
        unsigned n;
};

/* Map @size bytes of @fd from @offset (need not be page-aligned) as the
 * region [@gpa, @gpa + @size) with front-end address @uva and add it.
 * @fd is *not* consumed. Refuses (-EINVAL) empty or overflowing ranges,
 * ranges that overlap an existing region (by guest or front-end address)
 * and (-EFBIG) files shorter than offset + size, which would raise
 * SIGBUS on access; -ENOSPC when all regions are used. */
int guestmem_map_fd(struct guestmem *m, uint64_t gpa, uint64_t size, uint64_t uva, int fd, uint64_t offset);

/* Add memory the caller owns (tests and fuzzing): same checks as
 * guestmem_map_fd, but nothing is unmapped later. */
int guestmem_add_ptr(struct guestmem *m, uint64_t gpa, uint64_t size, uint64_t uva, void *host);

/* Unmap every region; the table is empty afterwards. Idempotent. */
void guestmem_clear(struct guestmem *m);

/* Move @from into @to (which is cleared first); @from is left empty. */
void guestmem_move(struct guestmem *to, struct guestmem *from);

/* A host pointer for the guest-physical range [@gpa, @gpa + @len), or NULL
 * unless it lies within one region. @len 0 is refused. */
void *guestmem_gpa(const struct guestmem *m, uint64_t gpa, uint64_t len);
/* The same for a front-end virtual address. */
void *guestmem_uva(const struct guestmem *m, uint64_t uva, uint64_t len);

/* Append the host pieces of [@gpa, @gpa + @len) to @iov (at most @max
 * entries in all, *@n in use), following the range across adjacent
 * regions. Returns 0, -EFAULT if some byte is not guest memory, -E2BIG if
 * more than @max pieces would be needed. A zero @len appends nothing. */
int guestmem_gpa_iov(const struct guestmem *m, uint64_t gpa, uint64_t len, struct iovec *iov, unsigned max,
                     unsigned *n);
