/* Allocation counting for tests whose link wraps the allocator
 * (-Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc): every call
 * is counted, with the size asked for last and the largest. */
#pragma once

#include <stdatomic.h>
#include <stddef.h>

extern atomic_size_t alloc_calls;
extern atomic_size_t alloc_last;
extern atomic_size_t alloc_max;
