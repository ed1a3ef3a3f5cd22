/* vsock-vhost's split virtqueue (src/vhost/virtq.c) against a guest that
 * lies: indices past the queue, descriptor loops, chains out of memory,
 * wrapping addresses, readable after writable, nested and malformed
 * indirect tables, over-long chains. Each bad chain is refused alone and
 * the next good one is still served; a bad ring index breaks the queue. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "fake-driver.h"
#include "vhost/guestmem.h"
#include "vhost/virtio.h"
#include "vhost/virtq.h"

#define GPA 0x100000ull
#define UVA 0x7f0000000000ull
#define MEM (1u << 20)
#define NUM 16

struct env {
        uint8_t *ram;
        struct guestmem mem;
        struct fdrv_mem fm;
        struct fdrv_q dq;       /* the driver's view */
        struct virtq q;         /* the device's */
        uint64_t buf;           /* a data buffer in guest memory */
};

static uint64_t uva_of(uint64_t gpa) { return gpa - GPA + UVA; }

static int setup(void **state) {
        struct env *e = calloc(1, sizeof *e);
        e->ram = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(e->ram != MAP_FAILED);
        assert_int_equal(guestmem_add_ptr(&e->mem, GPA, MEM, UVA, e->ram), 0);
        fdrv_mem_init(&e->fm, e->ram, GPA, MEM);
        fdrv_q_init(&e->dq, &e->fm, NUM);
        /* Descriptors 8 and up are for the hostile ones. */
        fdrv_q_reserve(&e->dq, 8);
        virtq_reset(&e->q);
        assert_int_equal(virtq_set_num(&e->q, NUM), 0);
        virtq_set_addr(&e->q, uva_of(e->dq.desc), uva_of(e->dq.avail), uva_of(e->dq.used));
        assert_int_equal(virtq_map(&e->q, &e->mem), 0);
        virtq_sync_used(&e->q);
        e->buf = fdrv_alloc(&e->fm, 8192, 16);
        *state = e;
        return 0;
}

static int teardown(void **state) {
        struct env *e = *state;
        munmap(e->ram, MEM);
        free(e);
        return 0;
}

/* A good chain: 44 readable bytes, then 100 writable. */
static int add_good(struct env *e) {
        struct fdrv_buf b[2] = { { e->buf, 44 }, { e->buf + 100, 100 } };
        return fdrv_add(&e->dq, b, 1, 1);
}

static void expect_good_next(struct env *e) {
        struct vq_chain c;
        int head = add_good(e);
        assert_true(head >= 0);
        assert_int_equal(virtq_pop(&e->q, &e->mem, &c), 1);
        assert_int_equal(c.head, head);
        assert_int_equal(c.n_out, 1);
        assert_int_equal(c.n_in, 1);
        assert_int_equal(c.out_len, 44);
        assert_int_equal(c.in_len, 100);
        assert_ptr_equal(c.out[0].iov_base, e->ram + (e->buf - GPA));
        assert_ptr_equal(c.in[0].iov_base, e->ram + (e->buf + 100 - GPA));
        virtq_push(&e->q, c.head, 7);
        uint32_t h, len;
        assert_true(fdrv_used(&e->dq, &h, &len));
        assert_int_equal(h, head);
        assert_int_equal(len, 7);
}

static void test_good_chain(void **state) {
        struct env *e = *state;
        struct vq_chain c;
        assert_int_equal(virtq_pop(&e->q, &e->mem, &c), 0);
        assert_false(virtq_has_avail(&e->q));
        /* More than a ring's worth, so indices wrap. */
        for (int i = 0; i < 3 * NUM; i++)
                expect_good_next(e);
        assert_false(e->q.broken);
}

static void test_unpop(void **state) {
        struct env *e = *state;
        struct vq_chain c;
        int head = add_good(e);
        assert_int_equal(virtq_pop(&e->q, &e->mem, &c), 1);
        virtq_unpop(&e->q);
        assert_true(virtq_has_avail(&e->q));
        assert_int_equal(virtq_pop(&e->q, &e->mem, &c), 1);
        assert_int_equal(c.head, head);
}

/* A bad chain costs only itself: -EBADMSG with a valid head, and the
 * following good chain is served. */
static void expect_bad_chain(struct env *e, uint16_t head) {
        struct vq_chain c;
        fdrv_publish(&e->dq, head);
        assert_int_equal(virtq_pop(&e->q, &e->mem, &c), -EBADMSG);
        assert_int_equal(c.head, head);
        assert_false(e->q.broken);
        virtq_push(&e->q, c.head, 0);
        uint32_t h, len;
        assert_true(fdrv_used(&e->dq, &h, &len));
        expect_good_next(e);
}

static void test_loop(void **state) {
        struct env *e = *state;
        /* 10 -> 11 -> 10 -> ... */
        fdrv_set_desc(&e->dq, 10, e->buf, 8, VIRTQ_DESC_F_NEXT, 11);
        fdrv_set_desc(&e->dq, 11, e->buf, 8, VIRTQ_DESC_F_NEXT, 10);
        expect_bad_chain(e, 10);
        /* A descriptor that names itself. */
        fdrv_set_desc(&e->dq, 12, e->buf, 8, VIRTQ_DESC_F_NEXT, 12);
        expect_bad_chain(e, 12);
        /* Empty descriptors add no buffer pieces: only the walk's own
         * bound ends this one. */
        fdrv_set_desc(&e->dq, 10, e->buf, 0, VIRTQ_DESC_F_NEXT, 11);
        fdrv_set_desc(&e->dq, 11, e->buf, 0, VIRTQ_DESC_F_NEXT, 10);
        expect_bad_chain(e, 10);
}

static void test_next_out_of_range(void **state) {
        struct env *e = *state;
        fdrv_set_desc(&e->dq, 9, e->buf, 8, VIRTQ_DESC_F_NEXT, NUM);
        expect_bad_chain(e, 9);
        fdrv_set_desc(&e->dq, 9, e->buf, 8, VIRTQ_DESC_F_NEXT, 0xffff);
        expect_bad_chain(e, 9);
}

static void test_buffers_outside_memory(void **state) {
        struct env *e = *state;
        /* Below, above, straddling the end, wrapping the address space. */
        fdrv_set_desc(&e->dq, 9, GPA - 16, 8, 0, 0);
        expect_bad_chain(e, 9);
        fdrv_set_desc(&e->dq, 9, GPA + MEM, 8, 0, 0);
        expect_bad_chain(e, 9);
        fdrv_set_desc(&e->dq, 9, GPA + MEM - 4, 8, 0, 0);
        expect_bad_chain(e, 9);
        fdrv_set_desc(&e->dq, 9, UINT64_MAX - 3, 8, VIRTQ_DESC_F_WRITE, 0);
        expect_bad_chain(e, 9);
        fdrv_set_desc(&e->dq, 9, GPA, UINT32_MAX, 0, 0);
        expect_bad_chain(e, 9);
}

static void test_readable_after_writable(void **state) {
        struct env *e = *state;
        fdrv_set_desc(&e->dq, 9, e->buf, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 10);
        fdrv_set_desc(&e->dq, 10, e->buf, 8, 0, 0);
        expect_bad_chain(e, 9);
        /* Even when the writable one is empty. */
        fdrv_set_desc(&e->dq, 9, e->buf, 0, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 10);
        expect_bad_chain(e, 9);
}

/* An indirect table at @table with @n entries, referenced by desc 9. */
static void indirect_at(struct env *e, uint64_t table, uint32_t len, uint16_t flags) {
        fdrv_set_desc(&e->dq, 9, table, len, VIRTQ_DESC_F_INDIRECT | flags, 0);
}

static void put_table_desc(struct env *e, uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                           uint16_t next) {
        struct virtq_desc d = { addr, len, flags, next };
        memcpy(fdrv_ptr(&e->fm, table + 16u * i), &d, sizeof d);
}

static void test_indirect(void **state) {
        struct env *e = *state;
        struct vq_chain c;
        uint64_t t = fdrv_alloc(&e->fm, 16 * 4, 16);
        put_table_desc(e, t, 0, e->buf, 44, VIRTQ_DESC_F_NEXT, 1);
        put_table_desc(e, t, 1, e->buf + 64, 4096, VIRTQ_DESC_F_WRITE, 0);
        indirect_at(e, t, 32, 0);

        /* Not agreed: refused. */
        expect_bad_chain(e, 9);
        e->q.indirect = true;
        indirect_at(e, t, 32, 0);
        fdrv_publish(&e->dq, 9);
        assert_int_equal(virtq_pop(&e->q, &e->mem, &c), 1);
        assert_int_equal(c.out_len, 44);
        assert_int_equal(c.in_len, 4096);
        virtq_push(&e->q, c.head, 0);
        uint32_t h, len;
        assert_true(fdrv_used(&e->dq, &h, &len));

        /* With NEXT set as well. */
        indirect_at(e, t, 32, VIRTQ_DESC_F_NEXT);
        expect_bad_chain(e, 9);
        /* Length not a whole number of descriptors, or none. */
        indirect_at(e, t, 24, 0);
        expect_bad_chain(e, 9);
        indirect_at(e, t, 0, 0);
        expect_bad_chain(e, 9);
        /* The table outside guest memory. */
        indirect_at(e, GPA + MEM - 16, 32, 0);
        expect_bad_chain(e, 9);
        /* A table inside a table (the inner one well-formed). */
        uint64_t inner = fdrv_alloc(&e->fm, 16, 16);
        put_table_desc(e, inner, 0, e->buf, 44, 0, 0);
        put_table_desc(e, t, 0, inner, 16, VIRTQ_DESC_F_INDIRECT, 0);
        indirect_at(e, t, 32, 0);
        expect_bad_chain(e, 9);
        put_table_desc(e, t, 0, e->buf, 44, VIRTQ_DESC_F_NEXT, 1);
        /* A loop within the table, and a next past its end. */
        put_table_desc(e, t, 1, e->buf, 8, VIRTQ_DESC_F_NEXT, 0);
        indirect_at(e, t, 32, 0);
        expect_bad_chain(e, 9);
        put_table_desc(e, t, 1, e->buf, 8, VIRTQ_DESC_F_NEXT, 2);
        indirect_at(e, t, 32, 0);
        expect_bad_chain(e, 9);
}

static void test_too_many_segments(void **state) {
        struct env *e = *state;
        e->q.indirect = true;
        /* An indirect table of VQ_MAX_SEGS + 1 one-byte buffers. */
        unsigned n = VQ_MAX_SEGS + 1;
        uint64_t t = fdrv_alloc(&e->fm, 16u * n, 16);
        for (unsigned i = 0; i < n; i++)
                put_table_desc(e, t, (uint16_t) i, e->buf + i, 1, i + 1 < n ? VIRTQ_DESC_F_NEXT : 0,
                               (uint16_t) (i + 1));
        indirect_at(e, t, 16 * n, 0);
        expect_bad_chain(e, 9);
        /* One fewer is fine. */
        put_table_desc(e, t, (uint16_t) (n - 2), e->buf, 1, 0, 0);
        indirect_at(e, t, 16 * n, 0);
        fdrv_publish(&e->dq, 9);
        struct vq_chain c;
        assert_int_equal(virtq_pop(&e->q, &e->mem, &c), 1);
        assert_int_equal(c.n_out, VQ_MAX_SEGS);
}

static void test_ring_index_garbage(void **state) {
        struct env *e = *state;
        struct vq_chain c;
        expect_good_next(e);
        /* The available index jumps further than the ring holds. */
        fdrv_set_avail_idx(&e->dq, (uint16_t) (e->dq.avail_idx + NUM + 1));
        assert_int_equal(virtq_pop(&e->q, &e->mem, &c), -EPROTO);
        assert_true(e->q.broken);
        assert_non_null(e->q.why);
        /* Broken stays broken, even if the index is put back. */
        fdrv_set_avail_idx(&e->dq, e->q.last_avail);
        assert_int_equal(virtq_pop(&e->q, &e->mem, &c), -EPROTO);
        assert_false(virtq_has_avail(&e->q));
}

static void test_head_out_of_range(void **state) {
        struct env *e = *state;
        struct vq_chain c;
        fdrv_publish(&e->dq, NUM);
        uint16_t before = e->q.last_avail;
        assert_int_equal(virtq_pop(&e->q, &e->mem, &c), -EPROTO);
        assert_true(e->q.broken);
        assert_int_equal(e->q.last_avail, before);
}

static void test_exactly_a_ring(void **state) {
        struct env *e = *state;
        struct vq_chain c;
        /* NUM entries outstanding is legal; the device takes them all. */
        fdrv_set_desc(&e->dq, 13, e->buf, 8, 0, 0);
        for (int i = 0; i < NUM; i++)
                fdrv_publish(&e->dq, 13);
        for (int i = 0; i < NUM; i++)
                assert_int_equal(virtq_pop(&e->q, &e->mem, &c), 1);
        assert_int_equal(virtq_pop(&e->q, &e->mem, &c), 0);
        assert_false(e->q.broken);
}

static void test_span_regions(void **state) {
        struct env *e = *state;
        /* A second region right after the first, mapped elsewhere. */
        uint8_t *ram2 = calloc(1, 4096);
        assert_int_equal(guestmem_add_ptr(&e->mem, GPA + MEM, 4096, UVA + 2 * MEM, ram2), 0);
        fdrv_set_desc(&e->dq, 9, GPA + MEM - 10, 20, 0, 0);
        fdrv_publish(&e->dq, 9);
        struct vq_chain c;
        assert_int_equal(virtq_pop(&e->q, &e->mem, &c), 1);
        assert_int_equal(c.n_out, 2);
        assert_ptr_equal(c.out[0].iov_base, e->ram + MEM - 10);
        assert_int_equal(c.out[0].iov_len, 10);
        assert_ptr_equal(c.out[1].iov_base, ram2);
        assert_int_equal(c.out[1].iov_len, 10);
        guestmem_clear(&e->mem);
        free(ram2);
}

static void test_notify_suppression(void **state) {
        struct env *e = *state;
        virtq_push(&e->q, 0, 0);
        assert_true(virtq_should_notify(&e->q));
        fdrv_set_avail_flags(&e->dq, VIRTQ_AVAIL_F_NO_INTERRUPT);
        assert_false(virtq_should_notify(&e->q));
}

static void test_setup_checks(void **state) {
        struct env *e = *state;
        struct virtq q;
        virtq_reset(&q);
        assert_int_equal(virtq_set_num(&q, 0), -EINVAL);
        assert_int_equal(virtq_set_num(&q, 3), -EINVAL);
        assert_int_equal(virtq_set_num(&q, 65536), -EINVAL);
        assert_int_equal(virtq_set_num(&q, 32768), 0);
        assert_int_equal(q.num, 32768);
        assert_int_equal(virtq_map(&q, &e->mem), -EINVAL); /* no addresses yet */
        assert_int_equal(virtq_set_num(&q, NUM), 0);
        /* Misaligned parts. */
        virtq_set_addr(&q, uva_of(e->dq.desc) + 8, uva_of(e->dq.avail), uva_of(e->dq.used));
        assert_int_equal(virtq_map(&q, &e->mem), -EFAULT);
        virtq_set_addr(&q, uva_of(e->dq.desc), uva_of(e->dq.avail) + 1, uva_of(e->dq.used));
        assert_int_equal(virtq_map(&q, &e->mem), -EFAULT);
        virtq_set_addr(&q, uva_of(e->dq.desc), uva_of(e->dq.avail), uva_of(e->dq.used) + 2);
        assert_int_equal(virtq_map(&q, &e->mem), -EFAULT);
        /* A used ring that runs past the end of memory. */
        virtq_set_addr(&q, uva_of(e->dq.desc), uva_of(e->dq.avail), UVA + MEM - 16);
        assert_int_equal(virtq_map(&q, &e->mem), -EFAULT);
        assert_false(virtq_mapped(&q));
        struct vq_chain c;
        assert_int_equal(virtq_pop(&q, &e->mem, &c), -EPROTO);
        assert_false(virtq_has_avail(&q));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_good_chain, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unpop, setup, teardown),
                cmocka_unit_test_setup_teardown(test_loop, setup, teardown),
                cmocka_unit_test_setup_teardown(test_next_out_of_range, setup, teardown),
                cmocka_unit_test_setup_teardown(test_buffers_outside_memory, setup, teardown),
                cmocka_unit_test_setup_teardown(test_readable_after_writable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_indirect, setup, teardown),
                cmocka_unit_test_setup_teardown(test_too_many_segments, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ring_index_garbage, setup, teardown),
                cmocka_unit_test_setup_teardown(test_head_out_of_range, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exactly_a_ring, setup, teardown),
                cmocka_unit_test_setup_teardown(test_span_regions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_notify_suppression, setup, teardown),
                cmocka_unit_test_setup_teardown(test_setup_checks, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
