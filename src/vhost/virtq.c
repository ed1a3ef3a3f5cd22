#include "vhost/virtq.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "vhost/virtio.h"

/* Guest memory changes under us. A copy followed by a compiler barrier
 * pins the value: the compiler may not read the source again in place of
 * the copy, so what was checked is what is used. */
static inline void guest_copy(void *dst, const void *src, size_t n) {
        memcpy(dst, src, n);
        __asm__ __volatile__("" ::: "memory");
}

static inline uint16_t load16(const uint8_t *p, int order) {
        return le16toh(__atomic_load_n((const uint16_t *) (const void *) p, order));
}

void virtq_reset(struct virtq *vq) { *vq = (struct virtq) { 0 }; }

int virtq_set_num(struct virtq *vq, uint32_t num) {
        if (num == 0 || num > VIRTQ_MAX_SIZE || (num & (num - 1)) != 0)
                return -EINVAL;
        vq->num = (uint16_t) num;
        return 0;
}

void virtq_set_addr(struct virtq *vq, uint64_t desc, uint64_t avail, uint64_t used) {
        vq->desc_uva = desc;
        vq->avail_uva = avail;
        vq->used_uva = used;
        vq->addr_set = true;
}

int virtq_map(struct virtq *vq, const struct guestmem *mem) {
        vq->desc = vq->avail = vq->used = NULL;
        if (vq->num == 0 || !vq->addr_set)
                return -EINVAL;
        /* Alignment as the spec requires of the driver (2.7): it also
         * keeps our 16- and 32-bit accesses aligned. */
        if (vq->desc_uva % 16 || vq->avail_uva % 2 || vq->used_uva % 4)
                return -EFAULT;
        uint8_t *d = guestmem_uva(mem, vq->desc_uva, VIRTQ_DESC_BYTES(vq->num));
        uint8_t *a = guestmem_uva(mem, vq->avail_uva, VIRTQ_AVAIL_BYTES(vq->num));
        uint8_t *u = guestmem_uva(mem, vq->used_uva, VIRTQ_USED_BYTES(vq->num));
        if (!d || !a || !u)
                return -EFAULT;
        vq->desc = d;
        vq->avail = a;
        vq->used = u;
        return 0;
}

void virtq_sync_used(struct virtq *vq) {
        if (vq->used)
                vq->used_idx = load16(vq->used + 2, __ATOMIC_RELAXED);
}

static int broken(struct virtq *vq, const char *why) {
        vq->broken = true;
        vq->why = why;
        return -EPROTO;
}

/* How many entries the driver made available that we have not taken;
 * more than the queue holds means the index is garbage. */
static int avail_pending(struct virtq *vq, uint16_t *ret) {
        if (vq->broken || !vq->desc)
                return -EPROTO;
        /* Acquire: the ring entries and descriptors the driver wrote before
         * publishing this index are visible once we have read it. */
        uint16_t idx = load16(vq->avail + 2, __ATOMIC_ACQUIRE);
        uint16_t n = (uint16_t) (idx - vq->last_avail);
        if (n > vq->num)
                return broken(vq, "available index moved past the queue size");
        *ret = n;
        return 0;
}

bool virtq_has_avail(struct virtq *vq) {
        uint16_t n;
        return avail_pending(vq, &n) == 0 && n > 0;
}

/* Append the buffer of @d to the chain's readable or writable part. */
static int add_buffer(struct vq_chain *c, const struct guestmem *mem, const struct virtq_desc *d, bool *seen_write) {
        if (d->flags & VIRTQ_DESC_F_WRITE) {
                *seen_write = true;
                if (guestmem_gpa_iov(mem, d->addr, d->len, c->in, VQ_MAX_SEGS, &c->n_in) < 0)
                        return -EBADMSG;
                c->in_len += d->len;
                return 0;
        }
        /* The device reads first, then writes: a readable buffer after a
         * writable one is not a chain the spec allows. */
        if (*seen_write)
                return -EBADMSG;
        if (guestmem_gpa_iov(mem, d->addr, d->len, c->out, VQ_MAX_SEGS, &c->n_out) < 0)
                return -EBADMSG;
        c->out_len += d->len;
        return 0;
}

static void read_desc(const uint8_t *table, uint16_t i, struct virtq_desc *d) {
        struct virtq_desc raw;
        guest_copy(&raw, table + (size_t) i * 16, sizeof raw);
        d->addr = le64toh(raw.addr);
        d->len = le32toh(raw.len);
        d->flags = le16toh(raw.flags);
        d->next = le16toh(raw.next);
}

/* Walk the chain starting at @head: direct descriptors, optionally ending
 * in one indirect table (which then holds the rest). Each table is walked
 * at most its own size of steps, so a loop ends as an error. */
static int walk(struct virtq *vq, const struct guestmem *mem, uint16_t head, struct vq_chain *c) {
        const uint8_t *table = vq->desc;
        uint32_t size = vq->num, steps = 0;
        bool in_indirect = false, seen_write = false;
        uint16_t i = head;

        for (;;) {
                if (++steps > size)
                        return -EBADMSG;
                struct virtq_desc d;
                read_desc(table, i, &d);
                if (d.flags & VIRTQ_DESC_F_INDIRECT) {
                        if (!vq->indirect || in_indirect || (d.flags & VIRTQ_DESC_F_NEXT))
                                return -EBADMSG;
                        if (d.len == 0 || d.len % 16 || d.len / 16 > VIRTQ_MAX_SIZE)
                                return -EBADMSG;
                        /* The table must be one piece of guest memory. */
                        const uint8_t *t = guestmem_gpa(mem, d.addr, d.len);
                        if (!t)
                                return -EBADMSG;
                        table = t;
                        size = d.len / 16;
                        steps = 0;
                        in_indirect = true;
                        i = 0;
                        continue;
                }
                int r = add_buffer(c, mem, &d, &seen_write);
                if (r < 0)
                        return r;
                if (!(d.flags & VIRTQ_DESC_F_NEXT))
                        return 0;
                if (d.next >= size)
                        return -EBADMSG;
                i = d.next;
        }
}

int virtq_pop(struct virtq *vq, const struct guestmem *mem, struct vq_chain *c) {
        uint16_t n;
        int r = avail_pending(vq, &n);
        if (r < 0)
                return r;
        if (n == 0)
                return 0;
        uint16_t head = load16(vq->avail + 4 + 2 * (size_t) (vq->last_avail % vq->num), __ATOMIC_RELAXED);
        if (head >= vq->num)
                return broken(vq, "available ring names a descriptor past the queue size");
        vq->last_avail++;
        c->head = head;
        c->n_out = c->n_in = 0;
        c->out_len = c->in_len = 0;
        return walk(vq, mem, head, c) < 0 ? -EBADMSG : 1;
}

void virtq_unpop(struct virtq *vq) { vq->last_avail--; }

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len) {
        if (!vq->used)
                return;
        struct virtq_used_elem e = { .id = htole32(head), .len = htole32(len) };
        memcpy(vq->used + 4 + 8 * (size_t) (vq->used_idx % vq->num), &e, sizeof e);
        vq->used_idx++;
        /* Release: the element (and the data written into the buffer) is
         * visible before the index that publishes it. */
        __atomic_store_n((uint16_t *) (void *) (vq->used + 2), htole16(vq->used_idx), __ATOMIC_RELEASE);
}

bool virtq_should_notify(struct virtq *vq) {
        if (!vq->avail)
                return false;
        /* Order our used-index store before reading the driver's flag, or
         * both sides could miss each other's update. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return !(load16(vq->avail, __ATOMIC_RELAXED) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}
