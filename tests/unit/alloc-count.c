#include "alloc-count.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

atomic_size_t alloc_calls;
atomic_size_t alloc_last;
atomic_size_t alloc_max;

static void note_alloc(size_t n) {
        atomic_fetch_add(&alloc_calls, 1);
        atomic_store(&alloc_last, n);
        size_t m = atomic_load(&alloc_max);
        while (n > m && !atomic_compare_exchange_weak(&alloc_max, &m, n))
                ;
}

void *__wrap_malloc(size_t n) {
        note_alloc(n);
        return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m) {
        note_alloc(n * m);
        return __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n) {
        note_alloc(n);
        return __real_realloc(p, n);
}
