#include "huge.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

void huge_advise(void *p, size_t n) {
        if (!p || n < HUGE_ADVICE_MIN)
                return;
        const uintptr_t page = (uintptr_t) getpagesize();
        uintptr_t a = ((uintptr_t) p + page - 1) & ~(page - 1);
        uintptr_t e = ((uintptr_t) p + n) & ~(page - 1);
        if (e > a)
                (void) madvise((void *) a, e - a, MADV_HUGEPAGE);
}
