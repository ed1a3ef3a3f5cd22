#include "budget.h"

#include <errno.h>
#include <stdint.h>

void budget_init(struct budget *b, size_t limit) { *b = (struct budget) { .limit = limit }; }

static void note_peak(struct budget *b, size_t used) {
        size_t p = __atomic_load_n(&b->peak, __ATOMIC_RELAXED);
        while (used > p && !__atomic_compare_exchange_n(&b->peak, &p, used, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                ;
}

int budget_reserve(struct budget *b, size_t n) {
        if (!b || n == 0)
                return 0;
        size_t used = __atomic_load_n(&b->used, __ATOMIC_RELAXED);
        for (;;) {
                if (b->limit && (n > b->limit || used > b->limit - n))
                        return -ENOBUFS;
                if (!b->limit && used > SIZE_MAX - n)
                        return -ENOBUFS;
                if (__atomic_compare_exchange_n(&b->used, &used, used + n, true, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                        break;
        }
        note_peak(b, used + n);
        return 0;
}

void budget_charge(struct budget *b, size_t n) {
        if (!b || n == 0)
                return;
        size_t used = __atomic_add_fetch(&b->used, n, __ATOMIC_ACQ_REL);
        note_peak(b, used);
}

int budget_release(struct budget *b, size_t n) {
        if (!b || n == 0)
                return 0;
        size_t used = __atomic_load_n(&b->used, __ATOMIC_RELAXED);
        for (;;) {
                size_t next = used >= n ? used - n : 0;
                if (__atomic_compare_exchange_n(&b->used, &used, next, true, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                        return used >= n ? 0 : -EINVAL;
        }
}

size_t budget_used(const struct budget *b) { return b ? __atomic_load_n(&b->used, __ATOMIC_RELAXED) : 0; }
size_t budget_peak(const struct budget *b) { return b ? __atomic_load_n(&b->peak, __ATOMIC_RELAXED) : 0; }
size_t budget_limit(const struct budget *b) { return b ? b->limit : 0; }

size_t budget_left(const struct budget *b) {
        if (!b || !b->limit)
                return SIZE_MAX;
        size_t used = budget_used(b);
        return used < b->limit ? b->limit - used : 0;
}
